import { describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_PATH } from '../../src/csi/proto.js';

// proto/csi.proto was written from shared/reference/csi-v1.12.0-wire.tsv; this keeps them equal.
const TSV = fileURLToPath(new URL('../../../../shared/reference/csi-v1.12.0-wire.tsv', import.meta.url));

interface MessageDescriptor {
  name: string;
  field: Array<{ name: string; number: number }>;
  nestedType: MessageDescriptor[];
  options?: { mapEntry?: boolean } | null;
  enumType: EnumDescriptor[];
}
interface EnumDescriptor {
  name: string;
  value: Array<{ name: string; number: number }>;
}

/** Every field and enum value of the loaded proto, as `Scope.name=number` (nested scopes dotted). */
function flatten(definition: protoLoader.PackageDefinition): { fields: string[]; enums: string[] } {
  const fields: string[] = [];
  const enums: string[] = [];
  const addEnum = (scope: string, e: EnumDescriptor) => e.value.forEach((v) => enums.push(`${scope}${e.name}.${v.name}=${v.number}`));
  const walk = (scope: string, m: MessageDescriptor) => {
    m.field.forEach((f) => fields.push(`${scope}${m.name}.${f.name}=${f.number}`));
    m.enumType.forEach((e) => addEnum(`${scope}${m.name}.`, e));
    // map<K,V> fields appear as synthetic *Entry messages; they are not in the table.
    m.nestedType.filter((n) => !n.options?.mapEntry).forEach((n) => walk(`${scope}${m.name}.`, n));
  };
  for (const [name, entry] of Object.entries(definition)) {
    if (!name.startsWith('csi.v1.') || name.split('.').length !== 3) continue;
    const { format, type } = entry as { format?: string; type?: unknown };
    if (format === 'Protocol Buffer 3 DescriptorProto') walk('', type as MessageDescriptor);
    if (format === 'Protocol Buffer 3 EnumDescriptorProto') addEnum('', type as EnumDescriptor);
  }
  return { fields: fields.sort(), enums: enums.sort() };
}

describe('proto/csi.proto matches the CSI v1.12.0 wire table', () => {
  if (!existsSync(TSV)) {
    if (process.env.CI) throw new Error(`CI must have ${TSV} (shared/ beside the checkout)`);
    it('cannot compare: the wire table is not beside this checkout', () => expect(existsSync(TSV)).toBe(false));
    return;
  }
  const definition = protoLoader.loadSync(PROTO_PATH, { keepCase: true });
  const rows = readFileSync(TSV, 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t'));

  it('has every field with its number, and nothing else', () => {
    const expected = rows.filter((r) => r[0] === 'field').map((r) => `${r[1]}.${r[2]}=${r[3]}`).sort();
    expect(flatten(definition).fields).toEqual(expected);
  });

  it('has every rpc of every service', () => {
    const expected = rows.filter((r) => r[0] === 'rpc').map((r) => `${r[1]}.${r[2]}`).sort();
    const actual: string[] = [];
    for (const [name, entry] of Object.entries(definition)) {
      if (!name.startsWith('csi.v1.') || (entry as { format?: string }).format) continue;
      if (typeof entry === 'object' && !('type' in entry)) {
        for (const method of Object.keys(entry)) actual.push(`${name.slice('csi.v1.'.length)}.${method}`);
      }
    }
    expect(actual.sort()).toEqual(expected);
  });

  it('has every enum value', () => {
    const expected = rows.filter((r) => r[0] === 'enum').map((r) => `${r[1]}.${r[2]}=${r[3]}`).sort();
    expect(flatten(definition).enums).toEqual(expected);
  });
});
