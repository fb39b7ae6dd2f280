// libuv runs every fs call on a pool of 4 threads by default, and an fsync
// holds its thread for a disk round trip. Under many concurrent writes the 4
// threads sat in fsync while every other fs call (a stat, a link read) queued
// behind them; with more fsyncs in flight the filesystem also commits them
// together (one journal commit for many). Read by libuv when the pool first
// starts: cli.ts imports this module before anything else. An explicit
// UV_THREADPOOL_SIZE in the environment wins.
process.env.UV_THREADPOOL_SIZE ??= '64';
