// The patch formats the API server accepts: JSON merge patch (RFC 7386; strategic merge is
// treated as a merge patch here) and JSON patch (RFC 6902).

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export class PatchError extends Error {}

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return structuredClone(patch);
  const result: Record<string, unknown> =
    target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [key, value] of Object.entries(patch as Record<string, unknown>)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

const unescape = (token: string) => token.replace(/~1/g, '/').replace(/~0/g, '~');

function parent(doc: Json, path: string): [Record<string, Json> | Json[], string] {
  if (!path.startsWith('/')) throw new PatchError(`invalid JSON pointer "${path}"`);
  const tokens = path.slice(1).split('/').map(unescape);
  const last = tokens.pop()!;
  let node: Json = doc;
  for (const token of tokens) {
    if (node === null || typeof node !== 'object') throw new PatchError(`path ${path} does not exist`);
    node = Array.isArray(node) ? node[Number(token)]! : node[token]!;
    if (node === undefined) throw new PatchError(`path ${path} does not exist`);
  }
  if (node === null || typeof node !== 'object') throw new PatchError(`path ${path} does not exist`);
  return [node, last];
}

interface Operation {
  op: string;
  path: string;
  value?: Json;
  from?: string;
}

export function jsonPatch(target: unknown, operations: unknown): unknown {
  if (!Array.isArray(operations)) throw new PatchError('a JSON patch must be an array of operations');
  const doc = structuredClone(target) as Json;
  for (const operation of operations as Operation[]) {
    const [node, key] = parent(doc, operation.path);
    const isArray = Array.isArray(node);
    const index = key === '-' && isArray ? node.length : Number(key);
    const current = isArray ? node[index] : (node as Record<string, Json>)[key];
    switch (operation.op) {
      case 'add':
        if (isArray) node.splice(index, 0, structuredClone(operation.value!));
        else (node as Record<string, Json>)[key] = structuredClone(operation.value!);
        break;
      case 'replace':
        if (current === undefined) throw new PatchError(`path ${operation.path} does not exist`);
        if (isArray) node[index] = structuredClone(operation.value!);
        else (node as Record<string, Json>)[key] = structuredClone(operation.value!);
        break;
      case 'remove':
        if (current === undefined) throw new PatchError(`path ${operation.path} does not exist`);
        if (isArray) node.splice(index, 1);
        else delete (node as Record<string, Json>)[key];
        break;
      case 'test':
        if (JSON.stringify(current) !== JSON.stringify(operation.value)) throw new PatchError(`test of ${operation.path} failed`);
        break;
      default:
        throw new PatchError(`unsupported JSON patch operation "${operation.op}"`);
    }
  }
  return doc;
}
