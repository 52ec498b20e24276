#!/usr/bin/env node
// Writes proto/csi.proto from the CSI wire table (shared/reference/csi-v1.12.0-wire.tsv).
// Usage: node scripts/proto-from-tsv.mjs ../shared/reference/csi-v1.12.0-wire.tsv > proto/csi.proto
// The table does not mark streaming; SnapshotMetadata's two RPCs stream their responses in the spec.
import { readFileSync } from 'node:fs';

const STREAMING_RESPONSES = new Set(['GetMetadataAllocated', 'GetMetadataDelta']);
const rows = readFileSync(process.argv[2], 'utf8').trim().split('\n').slice(1)
  .map((line) => {
    const [kind, scope, name, number, type, label, oneof, alpha] = line.split('\t');
    return { kind, scope, name, number, type, label, oneof, alpha };
  });

const root = { children: new Map(), fields: [], enums: new Map() };
const messageAt = (path) => {
  let node = root;
  for (const part of path.split('.').filter(Boolean)) {
    if (!node.children.has(part)) node.children.set(part, { children: new Map(), fields: [], enums: new Map() });
    node = node.children.get(part);
  }
  return node;
};
const services = new Map();
for (const row of rows) {
  if (row.kind === 'message') messageAt(row.scope ? `${row.scope}.${row.name}` : row.name);
  else if (row.kind === 'field') messageAt(row.scope).fields.push(row);
  else if (row.kind === 'enum') {
    const parts = row.scope.split('.');
    const enumName = parts.pop();
    const owner = messageAt(parts.join('.'));
    if (!owner.enums.has(enumName)) owner.enums.set(enumName, []);
    owner.enums.get(enumName).push(row);
  } else if (row.kind === 'rpc') {
    if (!services.has(row.scope)) services.set(row.scope, []);
    services.get(row.scope).push(row);
  }
}

const out = [];
const emit = (depth, text) => out.push(`${'  '.repeat(depth)}${text}`);
const fieldLine = (f) => {
  const map = /^map<\s*(\w+)\s*,\s*(\w+)\s*>$/.exec(f.label);
  const head = map ? `map<${map[1]}, ${map[2]}>` : f.label === 'repeated' ? `repeated ${f.type}` : f.type;
  return `${head} ${f.name} = ${f.number};`;
};
const writeMessage = (name, node, depth) => {
  emit(depth, `message ${name} {`);
  for (const [enumName, values] of node.enums) {
    emit(depth + 1, `enum ${enumName} {`);
    for (const v of values) emit(depth + 2, `${v.name} = ${v.number};`);
    emit(depth + 1, '}');
  }
  for (const [childName, child] of node.children) writeMessage(childName, child, depth + 1);
  const oneofsDone = new Set();
  for (const f of node.fields) {
    if (!f.oneof) { emit(depth + 1, fieldLine(f)); continue; }
    if (oneofsDone.has(f.oneof)) continue;
    oneofsDone.add(f.oneof);
    emit(depth + 1, `oneof ${f.oneof} {`);
    for (const g of node.fields.filter((x) => x.oneof === f.oneof)) emit(depth + 2, fieldLine(g));
    emit(depth + 1, '}');
  }
  emit(depth, '}');
};

emit(0, '// CSI spec v1.12.0 wire definition for pg-reflinker, written from');
emit(0, '// shared/reference/csi-v1.12.0-wire.tsv by scripts/proto-from-tsv.mjs.');
emit(0, '// The spec\'s custom options (alpha_field, csi_secret, ...) carry no wire meaning and are left out.');
emit(0, 'syntax = "proto3";');
emit(0, 'package csi.v1;');
emit(0, '');
emit(0, 'import "google/protobuf/timestamp.proto";');
emit(0, 'import "google/protobuf/wrappers.proto";');
emit(0, '');
for (const [name, rpcs] of services) {
  emit(0, `service ${name} {`);
  for (const r of rpcs) {
    const [req, res] = r.type.split('->').map((s) => s.trim());
    const stream = STREAMING_RESPONSES.has(r.name) ? 'stream ' : '';
    emit(1, `rpc ${r.name} (${req}) returns (${stream}${res}) {}`);
  }
  emit(0, '}');
  emit(0, '');
}
for (const [enumName, values] of root.enums) {
  emit(0, `enum ${enumName} {`);
  for (const v of values) emit(1, `${v.name} = ${v.number};`);
  emit(0, '}');
}
for (const [name, node] of root.children) { writeMessage(name, node, 0); emit(0, ''); }
process.stdout.write(out.join('\n'));
