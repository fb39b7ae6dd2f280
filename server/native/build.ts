// Builds the sendfile addon (server/native/sendfile.c) next to this script in
// dist/, with the system C compiler and the running Node's own headers. It is
// optional: without a compiler or headers berth streams blob bodies through
// JS instead, so a failed build is a notice, never a failed `npm ci`.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const source = path.resolve(__dirname, '../../../server/native/sendfile.c');
const target = path.join(__dirname, 'sendfile.node');

function headers(): string | undefined {
  const candidates = [path.resolve(process.execPath, '../../include/node'), '/usr/local/include/node', '/usr/include/node'];
  return candidates.find((dir) => fs.existsSync(path.join(dir, 'node_api.h')));
}

function build(): string | undefined {
  if (fs.existsSync(target) && fs.statSync(target).mtimeMs >= fs.statSync(source).mtimeMs) return undefined;
  const include = headers();
  if (!include) return "Node's headers (node_api.h) were not found";
  const tmp = path.join(__dirname, `sendfile.${process.pid}.tmp.node`);
  try {
    execFileSync(process.env.CC || 'cc', ['-O2', '-Wall', '-shared', '-fPIC', `-I${include}`, '-o', tmp, source, '-lpthread'], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    require(tmp); // loads, or says why not
    fs.renameSync(tmp, target);
    return undefined;
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    return (e as Error).message.split('\n')[0];
  }
}

const failure = build();
if (failure) {
  fs.rmSync(target, { force: true });
  console.error(`berth: sendfile addon not built (${failure}); blob bodies will be streamed through JS`);
}
