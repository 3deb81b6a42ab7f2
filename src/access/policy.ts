import type { AccessContext } from './context.ts';

/**
 * The interim policy (until the access-control issue lands): a pure function, deny by default.
 * Allows the `system` actor, and a user who is on the patient's care team. Everything else,
 * including patients and users with no relationship, is denied.
 */
export type ChartAction =
  | 'create'
  | 'read'
  | 'update'
  | 'list'
  | 'search'
  | 'history'
  | 'export'
  | 'care-team'
  | 'import'
  | 'report';

export type ResourceType = 'patient' | 'record' | 'chart' | 'care-team' | 'bundle';

/** Facts loaded before the decision runs; `decide` itself does no I/O. */
export interface Facts {
  /** The patient the resource belongs to exists and is in the caller's practice. */
  readonly patientInPractice: boolean;
  /** The caller is a current member of the patient's care team. */
  readonly onCareTeam: boolean;
}

export type DenyReason = 'not-found' | 'no-relationship' | 'actor-kind' | 'other-practice';

export type Decision = { readonly allow: true } | { readonly allow: false; readonly reason: DenyReason };

const ALLOW: Decision = Object.freeze({ allow: true });
const deny = (reason: DenyReason): Decision => ({ allow: false, reason });

export function decide(
  ctx: AccessContext,
  action: ChartAction,
  resource: ResourceType,
  facts: Facts,
): Decision {
  // Searching and creating a new patient have no patient yet; only the system actor may, for now.
  const needsPatient = !(
    action === 'search' ||
    action === 'import' ||
    (action === 'create' && resource === 'patient')
  );
  if (needsPatient && !facts.patientInPractice) {
    return deny('not-found');
  }
  switch (ctx.actor.kind) {
    case 'system':
      return ALLOW;
    case 'user':
      if (action === 'import') {
        return deny('actor-kind');
      }
      if (action === 'search') {
        // Results are filtered to the caller's care-team patients by the gate.
        return ALLOW;
      }
      return needsPatient && facts.onCareTeam ? ALLOW : deny('no-relationship');
    case 'patient':
      return deny('actor-kind');
    default:
      return deny('actor-kind');
  }
}
