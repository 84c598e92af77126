// Lints BPMN files with bpmnlint's rules and prints, per file, the ids each rule reports:
//   node lint.mjs RULES FILE...   (RULES: comma-separated bpmnlint rule names)
// Prints one JSON object {file: {rule: [ids]}}; a rule that throws reports the id null.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { BpmnModdle } from 'bpmn-moddle';

const require = createRequire(import.meta.url);
const { Linter } = require('bpmnlint');
const StaticResolver = require('bpmnlint/lib/resolver/static-resolver');

const [ list, ...files ] = process.argv.slice(2);
const rules = list.split(',');
const cache = {};
for (const rule of rules) {
  cache[`rule:bpmnlint/${rule}`] = require(`bpmnlint/rules/${rule}`);
}
const config = { rules: Object.fromEntries(rules.map(rule => [ rule, 'error' ])) };

const out = {};
for (const file of files) {
  const { rootElement } = await new BpmnModdle().fromXML(await readFile(file, 'utf8'));
  // A fresh linter per document: rules are cached per linter, and one of them keeps state.
  const results = await new Linter({ resolver: new StaticResolver(cache) }).lint(rootElement, config);
  out[file] = Object.fromEntries(rules.map(rule => [ rule, (results[rule] || []).map(r => r.id ?? null) ]));
}
console.log(JSON.stringify(out));
