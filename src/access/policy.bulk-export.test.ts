import { describe, expect, it } from 'vitest';
import { ROLES, type Role, STAFF_ROLES } from './grants.ts';
import { decide, type RecordFacts, type Sensitivity, type Subject } from './policy.ts';

/** The bulk export's decisions, written out by hand from docs/access-control.md ("bulk export"). */

const ME = '00000000-0000-4000-8000-000000000001';
const subject = (roles: Role[], kind: Subject['kind'] = 'user'): Subject => ({ kind, id: ME, roles });
const record = (sensitivity: Sensitivity, authorId = ME): RecordFacts => ({
  section: 'note',
  sensitivity,
  authorId,
  sharedWithSubject: false,
  categories: ['mental-health'],
  released: false,
});
const allowed = (s: Subject, r: Parameters<typeof decide>[2]) =>
  decide(s, 'bulk-export', r, { patient: null }).allow;

describe('policy: bulk export', () => {
  it('lets only the privacy officer export the practice', () => {
    for (const role of ROLES) {
      expect(allowed(subject([role]), { kind: 'practice' }), role).toBe(role === 'privacy_officer');
    }
    // Every other staff role together still does not make an exporter.
    const others = STAFF_ROLES.filter((r) => r !== 'privacy_officer');
    expect(allowed(subject([...others]), { kind: 'practice' })).toBe(false);
    expect(allowed(subject(['clinician', 'privacy_officer']), { kind: 'practice' })).toBe(true);
  });

  it('never lets the system actor or a patient export the practice', () => {
    expect(decide(subject([], 'system'), 'bulk-export', { kind: 'practice' }, { patient: null })).toEqual({
      allow: false,
      reason: 'actor-kind',
    });
    expect(allowed(subject(['privacy_officer'], 'patient'), { kind: 'practice' })).toBe(false);
  });

  it('includes normal and restricted records, whoever wrote them, and never a psychotherapy note', () => {
    const officer = subject(['privacy_officer']);
    expect(allowed(officer, { kind: 'record', record: record('normal', 'someone') })).toBe(true);
    expect(allowed(officer, { kind: 'record', record: record('restricted', 'someone') })).toBe(true);
    expect(
      decide(officer, 'bulk-export', { kind: 'record', record: record('psychotherapy') }, { patient: null }),
    ).toEqual({ allow: false, reason: 'sensitivity' });
    // Not even the author of a psychotherapy note exports it in bulk.
    expect(
      allowed(subject(['clinician', 'privacy_officer']), { kind: 'record', record: record('psychotherapy') }),
    ).toBe(false);
  });

  it('decides nothing about a single chart or section: those go through read and export', () => {
    const officer = subject(['privacy_officer']);
    expect(allowed(officer, { kind: 'chart' })).toBe(false);
    expect(allowed(officer, { kind: 'patient' })).toBe(false);
    expect(allowed(officer, { kind: 'section', section: 'note' })).toBe(false);
  });
});
