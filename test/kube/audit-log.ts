// What the controller asked the API server, read from kube-apiserver's own audit log: the real
// server records every request (verb, URI, user, answer), so tests that check how the controller
// talks to the API (one create, a watch rather than a poll, no request at all) need no recording
// proxy of ours.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface AuditEvent {
  auditID: string;
  stage: string;
  verb: string;
  requestURI: string;
  user: { username: string };
  objectRef?: { resource?: string; namespace?: string; name?: string; apiGroup?: string; subresource?: string };
  responseStatus?: { code?: number };
}

/** kube-apiserver flags that write a Metadata-level JSON audit log into `dir`. */
export function auditFlags(dir: string): string[] {
  const policy = join(dir, 'audit-policy.yaml');
  writeFileSync(
    policy,
    [
      'apiVersion: audit.k8s.io/v1',
      'kind: Policy',
      'omitStages: [RequestReceived]',
      'rules:',
      // The control plane's own chatter is of no interest and would only make the log large.
      '- level: None',
      '  users: [system:kube-controller-manager, system:apiserver]',
      '- level: None',
      '  userGroups: [system:serviceaccounts:kube-system]',
      '- level: Metadata',
      '',
    ].join('\n'),
  );
  return [`--audit-policy-file=${policy}`, `--audit-log-path=${join(dir, 'audit.log')}`, '--audit-log-format=json', '--audit-log-mode=blocking'];
}

export class AuditLog {
  constructor(private readonly dir: string) {}

  /** Every logged request of `username` (one event per request: ResponseComplete, or ResponseStarted for a watch). */
  requestsOf(username: string): AuditEvent[] {
    const file = join(this.dir, 'audit.log');
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line.includes(username))
      .map((line) => JSON.parse(line) as AuditEvent)
      .filter((e) => e.user.username === username && (e.stage === 'ResponseComplete' || (e.stage === 'ResponseStarted' && e.verb === 'watch')))
      .filter((e, i, all) => all.findIndex((o) => o.auditID === e.auditID) === i);
  }
}
