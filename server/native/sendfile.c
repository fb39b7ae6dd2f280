// Zero-copy blob responses: sendfile(2) from a file into a TCP socket, on a
// thread of its own per transfer so that a slow client never occupies one of
// libuv's few pool threads (which every fs call of the server shares).
//
// send(socketFd, fileFd, offset, length, idleMs, done) -> handle; cancel(handle)
// done(errno, bytesSent) runs on the JS thread; errno 0 means all was sent,
// ETIMEDOUT that the client took nothing for idleMs (0: no limit).
//
// Both descriptors are dup()ed: if Node closes its own meanwhile (a client
// gone, a stream destroyed), ours still name the same connection and file,
// never a recycled number. Only the JS thread closes the dups, after the
// transfer thread has finished, so cancel() (a shutdown(2) that makes a
// blocked transfer fail at once) never races a close.
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  int sock;
  int file;
  off_t offset;
  int64_t remaining;
  int64_t sent;
  int64_t idle_ms;
  int error;
  atomic_int cancelled;
  int refs; // the JS handle and the pending completion; touched on the JS thread only
  napi_threadsafe_function done;
} transfer_t;

static void release(transfer_t* t) {
  if (--t->refs == 0) free(t);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void* run(void* arg) {
  transfer_t* t = arg;
  int64_t progress = now_ms();
  while (t->remaining > 0) {
    if (atomic_load(&t->cancelled)) {
      t->error = ECANCELED;
      break;
    }
    size_t want = t->remaining > (1 << 30) ? (1 << 30) : (size_t)t->remaining;
    ssize_t n = sendfile(t->sock, t->file, &t->offset, want);
    if (n > 0) {
      t->remaining -= n;
      t->sent += n;
      progress = now_ms();
    } else if (n == 0) {
      t->error = ENODATA; // the file ended before the range did
      break;
    } else if (errno == EAGAIN) {
      if (t->idle_ms > 0 && now_ms() - progress > t->idle_ms) {
        t->error = ETIMEDOUT;
        break;
      }
      // Wake up now and then to check the idle limit and cancel().
      struct pollfd p = {.fd = t->sock, .events = POLLOUT};
      poll(&p, 1, 1000);
    } else if (errno != EINTR) {
      t->error = errno;
      break;
    }
  }
  napi_call_threadsafe_function(t->done, t, napi_tsfn_blocking);
  napi_release_threadsafe_function(t->done, napi_tsfn_release);
  return NULL;
}

static void finish(napi_env env, napi_value callback, void* context, void* data) {
  transfer_t* t = data;
  close(t->sock);
  close(t->file);
  t->sock = -1;
  if (env != NULL) {
    napi_value args[2], global;
    napi_create_int32(env, t->error, &args[0]);
    napi_create_int64(env, t->sent, &args[1]);
    napi_get_global(env, &global);
    napi_call_function(env, global, callback, 2, args, NULL);
  }
  release(t);
}

static void finalize_handle(napi_env env, void* data, void* hint) {
  release(data);
}

static napi_value throw_errno(napi_env env, const char* what) {
  napi_throw_error(env, NULL, what);
  return NULL;
}

static napi_value send_range(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 6) return throw_errno(env, "send(socketFd, fileFd, offset, length, idleMs, done)");
  int32_t sock, file;
  int64_t offset, length, idle_ms;
  if (napi_get_value_int32(env, argv[0], &sock) != napi_ok || napi_get_value_int32(env, argv[1], &file) != napi_ok ||
      napi_get_value_int64(env, argv[2], &offset) != napi_ok || napi_get_value_int64(env, argv[3], &length) != napi_ok ||
      napi_get_value_int64(env, argv[4], &idle_ms) != napi_ok || sock < 0 || file < 0 || offset < 0 || length < 0 || idle_ms < 0)
    return throw_errno(env, "send: descriptors, range and idle limit must be non-negative integers");

  transfer_t* t = calloc(1, sizeof *t);
  if (t == NULL) return throw_errno(env, "send: out of memory");
  t->sock = dup(sock);
  t->file = dup(file);
  if (t->sock < 0 || t->file < 0) {
    if (t->sock >= 0) close(t->sock);
    if (t->file >= 0) close(t->file);
    free(t);
    return throw_errno(env, "send: dup of a descriptor failed");
  }
  t->offset = offset;
  t->remaining = length;
  t->idle_ms = idle_ms;
  t->refs = 2;

  napi_value name, handle;
  napi_create_string_utf8(env, "berth.sendfile", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[5], NULL, name, 0, 1, NULL, NULL, NULL, finish, &t->done) != napi_ok) {
    close(t->sock);
    close(t->file);
    free(t);
    return throw_errno(env, "send: done must be a function");
  }
  napi_create_external(env, t, finalize_handle, NULL, &handle);

  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  int rc = pthread_create(&thread, &attr, run, t);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    // Report through the normal path so the caller has one way to learn the outcome.
    t->error = rc;
    napi_call_threadsafe_function(t->done, t, napi_tsfn_blocking);
    napi_release_threadsafe_function(t->done, napi_tsfn_release);
  }
  return handle;
}

static napi_value cancel(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void* data = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 1 || napi_get_value_external(env, argv[0], &data) != napi_ok) return throw_errno(env, "cancel(handle)");
  transfer_t* t = data;
  atomic_store(&t->cancelled, 1);
  if (t->sock >= 0) shutdown(t->sock, SHUT_RDWR);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "send", NAPI_AUTO_LENGTH, send_range, NULL, &fn);
  napi_set_named_property(env, exports, "send", fn);
  napi_create_function(env, "cancel", NAPI_AUTO_LENGTH, cancel, NULL, &fn);
  napi_set_named_property(env, exports, "cancel", fn);
  return exports;
}
