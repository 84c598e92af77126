// Times bpmnlint reading (bpmn-moddle) and linting each file with the given rules, inside node
// (start-up and module loading excluded):
//   node time.mjs RULES FILE...
// Per file: three warm-up runs, then runs until two seconds have passed (at least five, at most
// 200); prints one JSON object {file: {median_ms, runs, reports}}.
import { readFile } from 'node:fs/promises';
import { linterFor } from './linter.mjs';

const [ list, ...files ] = process.argv.slice(2);
const lint = linterFor(list.split(','));
const count = results => Object.values(results).reduce((n, reports) => n + reports.length, 0);

const out = {};
for (const file of files) {
  const xml = await readFile(file, 'utf8');
  let reports = 0;
  for (let i = 0; i < 3; i++) reports = count(await lint(xml));
  const times = [];
  const started = performance.now();
  while (times.length < 200 && (times.length < 5 || performance.now() - started < 2000)) {
    const t0 = performance.now();
    await lint(xml);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  out[file] = { median_ms: times[Math.floor(times.length / 2)], runs: times.length, reports };
}
console.log(JSON.stringify(out));
