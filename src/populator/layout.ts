// Names the populator script shares with the code that runs it and reads what it leaves. Each is
// defined here once and put into the script text from here (script.ts), never retyped in bash.

export { POPULATED_MARKER } from '../volume/paths.js';

/** In the clone's volume: where the copy is built before it is renamed into place. */
export const STAGING_DIR = '.pgr-staging';
/** The one line a failed run writes on stderr starts with this. */
export const FAILURE_PREFIX = 'pg-reflinker populate: ';
/** Backup labels (= clone volume names) the script accepts. */
export const LABEL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}$/;
/** Temporary replication slots are named `pgr_<label>_<pid>`. */
export const SLOT_PREFIX = 'pgr_';
/** A run's scratch directory under PGR_WORK_DIR is `pgr-populate.XXXXXX`, its log `…/log`. */
export const WORK_DIR_PREFIX = 'pgr-populate.';
