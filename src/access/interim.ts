import { ALL, SECTIONS } from './grants.ts';
import type { Action, Decision, Facts, Resource, Subject, View } from './policy.ts';

/**
 * The interim policy the gate had before access control landed, kept only as the baseline of
 * the `gate-read` benchmark (full policy against interim, same run). Never used by the server:
 * `Chart` takes it only through the benchmark-only `policy` option.
 *
 * It allowed the system actor everything, and a user on the patient's care team the whole chart.
 */
const FULL: View = Object.freeze(Object.fromEntries(SECTIONS.map((s) => [s, ALL])));
const ALLOW: Decision = Object.freeze({
  allow: true,
  view: FULL,
  via: 'care-team',
  grantId: null,
  consentOverride: false,
  restricted: false,
});

export function interimDecide(subject: Subject, action: Action, resource: Resource, facts: Facts): Decision {
  if (subject.kind === 'system') {
    return ALLOW;
  }
  if (subject.kind !== 'user' || action === 'import') {
    return { allow: false, reason: 'actor-kind' };
  }
  if (resource.kind === 'practice') {
    return action === 'search' ? ALLOW : { allow: false, reason: 'no-grant' };
  }
  if (facts.patient === null) {
    return { allow: false, reason: 'not-found' };
  }
  return facts.patient.onTeam ? ALLOW : { allow: false, reason: 'no-relationship' };
}
