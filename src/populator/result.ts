import type { CopyReport } from '../volume/context.js';
import { FAILURE_PREFIX } from './layout.js';

/** The populator's one JSON line on success: what the copy reports, with the run's label and mode. */
export interface PopulatorResult extends CopyReport {
  mode: 'online' | 'plain';
  label: string;
}

const NUMBERS = ['files', 'bytes', 'seconds', 'checkpointSeconds', 'copySeconds', 'walSeconds'] as const;

/** Parses the populator's stdout (the last non-empty line); throws when it is not a result. */
export function parsePopulatorResult(stdout: string): PopulatorResult {
  const line = stdout.trim().split('\n').pop() ?? '';
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new Error(`populator printed no result: ${JSON.stringify(line.slice(0, 200))}`);
  }
  const r = value as Record<string, unknown>;
  const bad = (field: string): never => {
    throw new Error(`populator result has a bad ${field}: ${line.slice(0, 300)}`);
  };
  if (typeof r !== 'object' || r === null) bad('shape');
  if (r.mode !== 'online' && r.mode !== 'plain') bad('mode');
  if (typeof r.label !== 'string') bad('label');
  for (const key of NUMBERS) if (typeof r[key] !== 'number' || !Number.isFinite(r[key])) bad(key);
  const online = r.mode === 'online';
  const lsn = (key: string) => (online ? typeof r[key] === 'string' && /^[0-9A-F]+\/[0-9A-F]+$/.test(r[key] as string) : r[key] === null);
  if (!lsn('startLsn')) bad('startLsn');
  if (!lsn('stopLsn')) bad('stopLsn');
  if (online ? !(Number.isInteger(r.timeline) && (r.timeline as number) > 0) : r.timeline !== null) bad('timeline');
  if (online ? r.backupFrom !== 'primary' && r.backupFrom !== 'standby' : r.backupFrom !== null) bad('backupFrom');
  return r as unknown as PopulatorResult;
}

/** The reason of a failed run: its `pg-reflinker populate:` line, else the last line it wrote. */
export function parsePopulatorFailure(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const ours = lines.filter((l) => l.startsWith(FAILURE_PREFIX)).pop();
  if (ours) return ours.slice(FAILURE_PREFIX.length).trim() || 'failed without a reason';
  return lines.pop() ?? 'failed without a message';
}
