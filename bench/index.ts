// `npm run bench -- …`: the side-by-side workloads (bench/run.ts), or with
// `growth` first, the growth curve over generated stores (bench/growth/).
if (process.argv[2] === 'growth') {
  process.argv.splice(2, 1);
  require('./growth/main');
} else {
  require('./run');
}
