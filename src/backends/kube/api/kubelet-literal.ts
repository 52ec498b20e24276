/**
 * `text` as kubelet passes it on: kubelet expands `$(VAR)` in a container's command, args and
 * env values and turns `$$` into `$`, so text carried there must have every `$` doubled to
 * reach the process unchanged (the populator's `$$` and SQL `DO $$ ... $$`, a `$` in a path).
 */
export const kubeletLiteral = (text: string): string => text.replace(/\$/g, '$$$$');
