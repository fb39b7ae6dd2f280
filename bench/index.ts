// `npm run bench -- …`: the side-by-side workloads (bench/run.ts); with
// `growth` first, the growth curve over generated stores (bench/growth/); with
// `proxy` first, the pull-through cache (bench/proxy.ts).
const what = process.argv[2];
if (what === 'growth' || what === 'proxy') process.argv.splice(2, 1);
if (what === 'growth') require('./growth/main');
else if (what === 'proxy') require('./proxy');
else require('./run');
