// Pins down the Helm behaviour that test/chart/render/main.go re-creates, on a fixture chart
// (test/chart/fixtures/semantics). Each expectation is what `helm template` does.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { TEST_DIR, buildRenderer, probeToolchain, render, renderOrThrow, type RenderResult } from './renderer.js';

const CI = ['1', 'true', 'yes'].includes(String(process.env.CI ?? '').toLowerCase());
const toolchain = probeToolchain();
const FIXTURE = path.join(TEST_DIR, 'fixtures', 'semantics');

if (!toolchain.ok) {
  describe('chart renderer (needs Go + sprig)', () => {
    test('the chart renderer toolchain is installed', () => {
      const msg = `chart renderer tests cannot run: ${toolchain.reason}`;
      if (CI) throw new Error(`${msg}\nCI is set, so this is a failure: put the packages into .ci/run.`);
      console.warn(`\n*** SKIPPED: the chart renderer tests (not in CI) ***\n${msg}\n`);
    });
  });
} else {
  const tc = toolchain;
  let bin = '';
  let scratch = '';
  let base: RenderResult;

  const file = (name: string, text: string): string => {
    const f = path.join(scratch, name);
    writeFileSync(f, text);
    return f;
  };
  const data = (r: RenderResult, name: string): Record<string, unknown> => {
    const d = r.documents.find((x) => x.object.metadata?.name === name);
    if (!d) throw new Error(`no document ${name}`);
    return d.object.data as Record<string, unknown>;
  };

  beforeAll(() => {
    bin = buildRenderer(tc);
    scratch = mkdtempSync(path.join(tmpdir(), 'pg-reflinker-renderer-test-'));
    base = renderOrThrow(bin, { chartDir: FIXTURE, strict: false, releaseName: 'rel', namespace: 'ns1' });
  }, 300_000);

  afterAll(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  describe('test renderer behaves like helm template', () => {
    test('built-in objects, include, tpl, fromYaml, toJson, sprig, .Files, .Capabilities', () => {
      expect(data(base, 'semantics-rel')).toEqual({
        keep: 'kept',
        removed: 'true',
        nested: 'a: 1\nb: two',
        list: '[1,2]',
        port: '9810',
        // Helm reads values through JSON: numbers are float64, and big ones print in e-notation.
        big: '1e+06',
        tpl: 'hello rel',
        fromYaml: 'first',
        appVersion: '9.9',
        service: 'Helm',
        template: 'semantics/templates/configmap.yaml',
        basePath: 'semantics/templates',
        sprig: 'ABCABC',
        file: 'hello from a chart file',
        kube: '34',
        // YAML 1.1, as the Kubernetes API machinery reads it: `yes: yes` is true: true.
        true: true,
      });
      expect(base.notes.trim()).toBe('notes for rel in ns1');
    });

    test('documents: split on ---, comment-only and empty ones dropped, partials never rendered', () => {
      expect(base.documents.map((d) => `${d.source}#${String(d.object.metadata.name)}`)).toEqual([
        'semantics/templates/configmap.yaml#semantics-rel',
        'semantics/templates/multi.yaml#second',
        'semantics/templates/multi.yaml#third',
      ]);
      // missingkey=zero and "<no value>" removed, as Helm renders by default.
      expect(data(base, 'third')).toEqual({ missing: '' });
    });

    test('--strict turns a missing key into an error naming it', () => {
      const out = render(bin, { chartDir: FIXTURE, strict: true });
      expect(out.ok).toBe(false);
      if (!out.ok) expect(out.error).toContain('map has no entry for key "nope"');
    });

    test('values files: later files win, maps merge, lists replace, null deletes a default', () => {
      const f1 = file('f1.yaml', 'removeMe: null\nnested:\n  b: three\nlist: [3]\n');
      const f2 = file('f2.yaml', 'nested:\n  c: 4\n  b: four\n');
      const r = renderOrThrow(bin, { chartDir: FIXTURE, strict: false, valueFiles: [f1, f2], releaseName: 'rel' });
      expect(data(r, 'semantics-rel')).toMatchObject({ removed: 'false', nested: 'a: 1\nb: four\nc: 4', list: '[3]' });
      expect(r.values).not.toHaveProperty('removeMe');
    });

    test('fail and required stop rendering with their message', () => {
      const failing = render(bin, { chartDir: FIXTURE, strict: false, valueFiles: [file('fail.yaml', 'flags:\n  doFail: true\n')] });
      expect(failing.ok).toBe(false);
      if (!failing.ok) expect(failing.error).toMatch(/execution error at \(semantics\/templates\/flags\.yaml:\d+:\d+\): asked to fail/);
      const req = render(bin, { chartDir: FIXTURE, strict: false, valueFiles: [file('req.yaml', 'flags:\n  checkRequired: true\n')] });
      expect(req.ok).toBe(false);
      if (!req.ok) expect(req.error).toContain('requiredValue is required');
      const given = renderOrThrow(bin, { chartDir: FIXTURE, strict: false, valueFiles: [file('req2.yaml', 'flags:\n  checkRequired: true\nrequiredValue: here\n')] });
      expect(given.documents.some((d) => d.object.required === 'here')).toBe(true);
    });

    test('values.schema.json is enforced after merging', () => {
      const out = render(bin, { chartDir: FIXTURE, strict: false, valueFiles: [file('schema.yaml', 'keep: 5\n')] });
      expect(out.ok).toBe(false);
      if (!out.ok) expect(out.error).toContain('keep: Invalid type. Expected: string, given: integer');
    });

    test('env, expandenv and lookup do not exist, as in Helm (lookup: not in this renderer at all)', () => {
      for (const fn of ['env "HOME"', 'expandenv "$HOME"', 'lookup "v1" "Pod" "" ""']) {
        const dir = mkdtempSync(path.join(scratch, 'chart-'));
        cpSync(FIXTURE, dir, { recursive: true });
        writeFileSync(path.join(dir, 'templates', 'extra.yaml'), `x: {{ ${fn} }}\n`);
        const out = render(bin, { chartDir: dir, strict: false });
        expect(out.ok).toBe(false);
        if (!out.ok) expect(out.error).toContain(`function "${fn.split(' ')[0]}" not defined`);
      }
    });

    test('invalid YAML output is reported with its template', () => {
      const dir = mkdtempSync(path.join(scratch, 'chart-'));
      cpSync(FIXTURE, dir, { recursive: true });
      writeFileSync(path.join(dir, 'templates', 'broken.yaml'), 'a: [unclosed\n');
      const out = render(bin, { chartDir: dir, strict: false });
      expect(out.ok).toBe(false);
      if (!out.ok) expect(out.error).toContain('YAML parse error on semantics/templates/broken.yaml');
    });
  });
}
