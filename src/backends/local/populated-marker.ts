import { join } from 'node:path';
import { POPULATED_MARKER } from '../../volume/paths.js';
import { parsePopulatorResult, type PopulatorResult } from '../../populator/result.js';
import { readUntrustedFile } from '../../volume/untrusted-file.js';

/**
 * The populator's result as it left it in a clone (`.pgr-populated`), when that is a regular file
 * holding a valid result labelled `label`; undefined otherwise. The volume is its owner's to
 * write: the marker is used only to recover a record we lost, never to reach outside the volume.
 */
export async function readPopulatedMarker(volumeDir: string, label: string): Promise<PopulatorResult | undefined> {
  try {
    const text = await readUntrustedFile(join(volumeDir, POPULATED_MARKER), { maxBytes: 64 * 1024 });
    const result = text === undefined ? undefined : parsePopulatorResult(text);
    return result?.label === label ? result : undefined;
  } catch {
    return undefined;
  }
}
