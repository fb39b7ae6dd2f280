#!/usr/bin/env node
// Count the results of a tap run from its raw TAP stream (stdin), the same way
// tap does: every leaf test point, plus a subtest's own point when it disagrees
// with its children (e.g. a test file that exited non-zero after passing asserts).
// Prints "S skipped, T todo" then exactly one line "N passed, N failed".
'use strict';
const { Parser } = require('tap-parser');

let passed = 0, failed = 0, skipped = 0, todo = 0;
const parser = new Parser();
parser.on('result', (r) => {
  if (r.todo) todo++;
  else if (r.skip) skipped++;
  else if (r.ok) passed++;
  else failed++;
});
parser.on('bailout', () => failed++);
parser.on('complete', () => {
  console.log(`${skipped} skipped, ${todo} todo`);
  console.log(`${passed} passed, ${failed} failed`);
});
process.stdin.pipe(parser);
