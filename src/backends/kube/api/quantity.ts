// Kubernetes resource quantities ("10Gi", "1.5G", "500M", "1e3", "100m") to whole bytes.
// Exact: the arithmetic is done on BigInt, and fractions of a byte round up.

const BINARY: Record<string, bigint> = { Ki: 1n << 10n, Mi: 1n << 20n, Gi: 1n << 30n, Ti: 1n << 40n, Pi: 1n << 50n, Ei: 1n << 60n };
const DECIMAL: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const QUANTITY_RE = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE])?$/;

export class InvalidQuantity extends Error {}

export function parseQuantity(text: string): number {
  const match = QUANTITY_RE.exec(text.trim());
  if (!match) throw new InvalidQuantity(`"${text}" is not a Kubernetes quantity`);
  const [, sign, number, suffix = ''] = match as unknown as [string, string, string, string | undefined];
  if (sign === '-') throw new InvalidQuantity(`"${text}" is negative`);
  const [whole = '', fraction = ''] = number.split('.');
  let numerator = BigInt(`${whole || '0'}${fraction}`);
  let denominator = 10n ** BigInt(fraction.length);
  if (suffix in BINARY) {
    numerator *= BINARY[suffix]!;
  } else {
    const exponent = /^[eE]/.test(suffix) ? Number(suffix.slice(1)) : DECIMAL[suffix]!;
    if (exponent >= 0) numerator *= 10n ** BigInt(exponent);
    else denominator *= 10n ** BigInt(-exponent);
  }
  const bytes = (numerator + denominator - 1n) / denominator;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidQuantity(`"${text}" is too large`);
  return Number(bytes);
}
