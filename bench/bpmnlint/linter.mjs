// bpmnlint with a given set of its rules, as bench/bpmnlint/lint.mjs and time.mjs use it:
// reads a document with bpmn-moddle (lax, as bpmnlint's CLI does) and lints it with a fresh
// Linter each time (rules are cached per linter, and one of them keeps state).
import { createRequire } from 'node:module';
import { BpmnModdle } from 'bpmn-moddle';

const require = createRequire(import.meta.url);
const { Linter } = require('bpmnlint');
const StaticResolver = require('bpmnlint/lib/resolver/static-resolver');

/** A function xml → {rule: reports} linting with `rules` (bpmnlint rule names). */
export function linterFor(rules) {
  const cache = {};
  for (const rule of rules) {
    cache[`rule:bpmnlint/${rule}`] = require(`bpmnlint/rules/${rule}`);
  }
  const config = { rules: Object.fromEntries(rules.map(rule => [ rule, 'error' ])) };
  return async function lint(xml) {
    const { rootElement } = await new BpmnModdle().fromXML(xml);
    return new Linter({ resolver: new StaticResolver(cache) }).lint(rootElement, config);
  };
}
