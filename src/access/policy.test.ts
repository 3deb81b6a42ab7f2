import { describe, expect, it } from 'vitest';
import { ALL, GRANTS, ROLES, type Role, SECTIONS } from './grants.ts';
import {
  type Action,
  type Consent,
  decide,
  type PatientFacts,
  type RecordFacts,
  type Resource,
  type Sensitivity,
  type Subject,
} from './policy.ts';

/**
 * The decision matrix. Every expectation here is written out by hand from the grant tables in
 * docs/access-control.md, not computed from the policy: role × action × section × relationship
 * (on team, off team, author, shared, break-glass active and expired) × sensitivity × consent.
 */

const ME = '00000000-0000-4000-8000-000000000001';
const COLLEAGUE = '00000000-0000-4000-8000-000000000002';
const GRANT = '00000000-0000-4000-8000-0000000000aa';

const subject = (roles: Role[], kind: Subject['kind'] = 'user', id = ME): Subject => ({ kind, id, roles });

type Rel = 'team' | 'off' | 'bg' | 'bgExpired';
const REL: readonly Rel[] = ['team', 'off', 'bg', 'bgExpired'];

const facts = (rel: Rel, extra: Partial<PatientFacts> = {}): PatientFacts => ({
  restricted: false,
  onTeam: rel === 'team',
  // An expired grant is not loaded as a fact: the loader selects active grants only.
  breakGlass: rel === 'bg' ? GRANT : null,
  consent: null,
  self: false,
  ...extra,
});

const record = (
  sensitivity: Sensitivity,
  who: 'me' | 'other' | 'shared',
  extra: Partial<RecordFacts> = {},
): RecordFacts => ({
  section: 'condition',
  sensitivity,
  authorId: who === 'me' ? ME : COLLEAGUE,
  sharedWithSubject: who === 'shared',
  categories: [],
  released: false,
  ...extra,
});

const BILLING_CONDITION = ['code', 'clinicalStatus', 'verificationStatus', 'onset', 'abatement'];

/** What one cell expects: `Y` every field, `B` billing's fields, `-` denied. */
const cell = (c: string) => (c === 'Y' ? ALL : c === 'B' ? BILLING_CONDITION : null);

// Record variants, in column order.
const VARIANTS: readonly [string, RecordFacts][] = [
  ['normal, other author', record('normal', 'other')],
  ['restricted, other author', record('restricted', 'other')],
  ['restricted, my own', record('restricted', 'me')],
  ['psychotherapy, my own', record('psychotherapy', 'me')],
  ['psychotherapy, shared with me', record('psychotherapy', 'shared')],
  ['psychotherapy, other author', record('psychotherapy', 'other')],
];

// Reading one record (a condition) by role and relationship; columns follow VARIANTS.
const READ_RECORD: Record<Exclude<Role, 'patient'>, Record<Rel, string>> = {
  clinician: { team: 'YYYYY-', off: '------', bg: 'Y-YYY-', bgExpired: '------' },
  nurse: { team: 'Y-----', off: '------', bg: 'Y-----', bgExpired: '------' },
  frontdesk: { team: '------', off: '------', bg: '------', bgExpired: '------' },
  billing: { team: 'B-----', off: 'B-----', bg: 'B-----', bgExpired: 'B-----' },
  admin: { team: '------', off: '------', bg: '------', bgExpired: '------' },
  privacy_officer: { team: '------', off: '------', bg: '------', bgExpired: '------' },
};

describe('decision matrix: reading one record', () => {
  const cases = Object.entries(READ_RECORD).flatMap(([role, rels]) =>
    REL.flatMap((rel) =>
      VARIANTS.map(([name, r], i) => ({ role: role as Role, rel, name, r, want: cell(rels[rel][i] ?? '?') })),
    ),
  );
  it.each(cases)('$role, $rel: $name', ({ role, rel, r, want }) => {
    const d = decide(subject([role]), 'read', { kind: 'record', record: r }, { patient: facts(rel) });
    if (want === null) {
      expect(d.allow).toBe(false);
    } else {
      expect(d).toMatchObject({ allow: true, view: { condition: want } });
      expect(Object.keys(d.allow ? d.view : {})).toEqual(['condition']);
      expect(d.allow && d.grantId).toBe(rel === 'bg' && role !== 'billing' ? GRANT : null);
    }
  });
});

describe('decision matrix: exporting one record (psychotherapy notes never leave)', () => {
  const EXPORT: Record<string, Record<Rel, string>> = {
    clinician: { team: 'YYY---', off: '------', bg: 'Y-Y---', bgExpired: '------' },
    nurse: { team: 'Y-----', off: '------', bg: 'Y-----', bgExpired: '------' },
    billing: { team: '------', off: '------', bg: '------', bgExpired: '------' },
  };
  const cases = Object.entries(EXPORT).flatMap(([role, rels]) =>
    REL.flatMap((rel) =>
      VARIANTS.map(([name, r], i) => ({ role: role as Role, rel, name, r, want: cell(rels[rel][i] ?? '?') })),
    ),
  );
  it.each(cases)('$role, $rel: $name', ({ role, rel, r, want }) => {
    const d = decide(subject([role]), 'export', { kind: 'record', record: r }, { patient: facts(rel) });
    expect(d.allow ? d.view.condition : null).toEqual(want);
  });
  it('not even the system actor exports a psychotherapy note', () => {
    const d = decide(
      subject([], 'system', 'system'),
      'export',
      { kind: 'record', record: record('psychotherapy', 'other') },
      { patient: facts('off') },
    );
    expect(d).toEqual({ allow: false, reason: 'sensitivity' });
  });
});

// The chart view (sections and fields) by role and relationship.
const CLINICAL_ALL = {
  encounter: ALL,
  observation: ALL,
  condition: ALL,
  procedure: ALL,
  medication: ALL,
  'therapy-plan': ALL,
  note: ALL,
  document: ALL,
};
const FULL = { demographics: ALL, contact: ALL, appointments: ALL, messages: ALL, ...CLINICAL_ALL };
/** Front desk's appointments: everything but the reason for the visit (clinical). */
const NO_REASON = ['start', 'end', 'clinicianId', 'room', 'status', 'seriesId', 'cancelCode'];
const FRONTDESK = { demographics: ALL, contact: ALL, appointments: NO_REASON };
const BILLING = {
  demographics: ['name', 'birthDate', 'sex', 'identifiers'],
  contact: ['address'],
  encounter: ['type', 'class', 'status', 'start', 'end'],
  condition: BILLING_CONDITION,
  procedure: ['status', 'code', 'performed'],
  medication: ['status', 'medication', 'period'],
};
const CHART: Record<Exclude<Role, 'patient'>, Record<Rel, object | null>> = {
  clinician: { team: FULL, off: null, bg: FULL, bgExpired: null },
  nurse: { team: FULL, off: null, bg: FULL, bgExpired: null },
  frontdesk: { team: FRONTDESK, off: FRONTDESK, bg: FRONTDESK, bgExpired: FRONTDESK },
  billing: { team: BILLING, off: BILLING, bg: BILLING, bgExpired: BILLING },
  admin: { team: null, off: null, bg: null, bgExpired: null },
  privacy_officer: { team: null, off: null, bg: null, bgExpired: null },
};

describe('decision matrix: chart and identity views', () => {
  const cases = Object.entries(CHART).flatMap(([role, rels]) =>
    REL.flatMap((rel) =>
      [false, true].map((restricted) => ({ role: role as Role, rel, restricted, want: rels[rel] })),
    ),
  );
  it.each(cases)('$role, $rel, restricted patient $restricted', ({ role, rel, restricted, want }) => {
    const d = decide(subject([role]), 'read', { kind: 'chart' }, { patient: facts(rel, { restricted }) });
    // A restricted patient needs explicit care-team membership for every role, front desk included.
    const expected =
      restricted && (role === 'frontdesk' || role === 'billing') && rel !== 'team' ? null : want;
    if (expected === null) {
      expect(d.allow).toBe(false);
      return;
    }
    expect(d).toMatchObject({ allow: true, restricted });
    expect(d.allow && d.view).toEqual(expected);
    const id = decide(subject([role]), 'read', { kind: 'patient' }, { patient: facts(rel, { restricted }) });
    const identity = Object.fromEntries(
      Object.entries(expected).filter(([s]) => s === 'demographics' || s === 'contact'),
    );
    expect(id.allow && id.view).toEqual(identity);
  });

  it('a user with several roles sees the union of their grants', () => {
    const d = decide(subject(['billing', 'frontdesk']), 'read', { kind: 'chart' }, { patient: facts('off') });
    expect(d.allow && d.view).toEqual({
      ...BILLING,
      demographics: ALL,
      contact: ALL,
      appointments: NO_REASON,
    });
    const n = decide(
      subject(['nurse', 'billing']),
      'read',
      { kind: 'record', record: record('restricted', 'other') },
      { patient: facts('team') },
    );
    expect(n.allow).toBe(false);
  });

  it('an unknown role string grants nothing', () => {
    const d = decide(
      { kind: 'user', id: ME, roles: ['superuser' as Role] },
      'read',
      { kind: 'chart' },
      { patient: facts('team') },
    );
    expect(d).toEqual({ allow: false, reason: 'no-relationship' });
  });

  it('a patient that does not exist is not found for everyone, the system included', () => {
    for (const role of ROLES) {
      expect(decide(subject([role]), 'read', { kind: 'chart' }, { patient: null })).toEqual({
        allow: false,
        reason: 'not-found',
      });
    }
    expect(decide(subject([], 'system', 'system'), 'read', { kind: 'chart' }, { patient: null }).allow).toBe(
      false,
    );
  });
});

// Writing: role × section × sensitivity of a new record, on the team (or practice-wide).
describe('decision matrix: writing', () => {
  const sections = ['demographics', 'contact', 'appointments', 'encounter', 'observation', 'note'] as const;
  // Columns: sections above with sensitivity normal, then `note` restricted, then `note` psychotherapy.
  const WRITE: Record<Exclude<Role, 'patient'>, Record<'team' | 'off', string>> = {
    clinician: { team: 'YYYYYYYY', off: '--------' },
    nurse: { team: 'YYYYYY--', off: '--------' },
    frontdesk: { team: 'YYY-----', off: 'YYY-----' },
    billing: { team: '--------', off: '--------' },
    admin: { team: '--------', off: '--------' },
    privacy_officer: { team: '--------', off: '--------' },
  };
  const columns: Resource[] = [
    ...sections.map((section) => ({ kind: 'section' as const, section })),
    { kind: 'section', section: 'note', sensitivity: 'restricted' },
    { kind: 'section', section: 'note', sensitivity: 'psychotherapy' },
  ];
  const cases = Object.entries(WRITE).flatMap(([role, rels]) =>
    (['team', 'off'] as const).flatMap((rel) =>
      columns.map((resource, i) => ({
        role: role as Role,
        rel,
        resource,
        label: JSON.stringify(resource),
        want: rels[rel][i] === 'Y',
      })),
    ),
  );
  it.each(cases)('$role, $rel: $label', ({ role, rel, resource, want }) => {
    expect(decide(subject([role]), 'write', resource, { patient: facts(rel) }).allow).toBe(want);
  });

  it.each([
    ['author', record('psychotherapy', 'me', { section: 'note' }), true],
    ['colleague it was shared with', record('psychotherapy', 'shared', { section: 'note' }), false],
    ['other clinician', record('psychotherapy', 'other', { section: 'note' }), false],
    ['anyone on the team, normal note', record('normal', 'other', { section: 'note' }), true],
  ])('updating an existing note: %s', (_name, r, want) => {
    expect(
      decide(subject(['clinician']), 'write', { kind: 'record', record: r }, { patient: facts('team') })
        .allow,
    ).toBe(want);
  });

  it('a patient writes nothing through the gate', () => {
    expect(
      decide(
        subject(['patient'], 'patient'),
        'write',
        { kind: 'section', section: 'demographics' },
        { patient: facts('off', { self: true }) },
      ).allow,
    ).toBe(false);
  });
});

// Actions that are not reads: by role and relationship.
describe('decision matrix: other actions', () => {
  const actions: Action[] = ['care-team', 'consent', 'flag', 'report', 'break-glass', 'export'];
  // One character per action above: Y allowed, - denied.
  const OTHER: Record<Exclude<Role, 'patient'>, Record<Rel, string>> = {
    clinician: { team: 'YYY--Y', off: '----Y-', bg: '----YY', bgExpired: '----Y-' },
    nurse: { team: '-----Y', off: '----Y-', bg: '----YY', bgExpired: '----Y-' },
    frontdesk: { team: 'YY----', off: 'YY----', bg: 'YY----', bgExpired: 'YY----' },
    billing: { team: '------', off: '------', bg: '------', bgExpired: '------' },
    admin: { team: '------', off: '------', bg: '------', bgExpired: '------' },
    privacy_officer: { team: '-YYY--', off: '-YYY--', bg: '-YYY--', bgExpired: '-YYY--' },
  };
  const cases = Object.entries(OTHER).flatMap(([role, rels]) =>
    REL.flatMap((rel) =>
      actions.map((action, i) => ({ role: role as Role, rel, action, want: rels[rel][i] === 'Y' })),
    ),
  );
  it.each(cases)('$role, $rel: $action', ({ role, rel, action, want }) => {
    // Break-glass is requested before any grant exists: decide it on the facts without one.
    const f = action === 'break-glass' ? facts(rel, { breakGlass: null }) : facts(rel);
    const resource: Resource = action === 'export' ? { kind: 'chart' } : { kind: 'patient' };
    expect(decide(subject([role]), action, resource, { patient: f }).allow).toBe(want);
  });

  it('break-glass on the care team is refused as not needed', () => {
    expect(
      decide(subject(['clinician']), 'break-glass', { kind: 'patient' }, { patient: facts('team') }),
    ).toEqual({
      allow: false,
      reason: 'not-needed',
    });
  });

  it.each([
    ['search', 'clinician', true],
    ['search', 'nurse', true],
    ['search', 'frontdesk', true],
    ['search', 'billing', true],
    ['search', 'admin', false],
    ['search', 'privacy_officer', false],
    ['create-patient', 'clinician', true],
    ['create-patient', 'nurse', true],
    ['create-patient', 'frontdesk', true],
    ['create-patient', 'billing', false],
    ['create-patient', 'admin', false],
    ['create-patient', 'privacy_officer', false],
    ['import', 'clinician', false],
    ['import', 'privacy_officer', false],
  ] as const)('practice-wide %s by %s: %s', (action, role, want) => {
    expect(decide(subject([role]), action, { kind: 'practice' }, { patient: null }).allow).toBe(want);
  });

  it('the system actor imports; a patient never searches', () => {
    expect(
      decide(subject([], 'system', 'system'), 'import', { kind: 'practice' }, { patient: null }).allow,
    ).toBe(true);
    expect(
      decide(subject(['patient'], 'patient'), 'search', { kind: 'practice' }, { patient: null }).allow,
    ).toBe(false);
  });

  it.each([
    [
      'author shares their psychotherapy note',
      record('psychotherapy', 'me', { section: 'note' }),
      'share',
      true,
    ],
    [
      'a colleague cannot re-share it',
      record('psychotherapy', 'shared', { section: 'note' }),
      'share',
      false,
    ],
    ['a normal note is not shared this way', record('normal', 'me', { section: 'note' }), 'share', false],
    ['release a normal record', record('normal', 'other'), 'release', true],
    [
      'a psychotherapy note is never released',
      record('psychotherapy', 'me', { section: 'note' }),
      'release',
      false,
    ],
  ] as const)('%s', (_n, r, action, want) => {
    expect(
      decide(subject(['clinician']), action, { kind: 'record', record: r }, { patient: facts('team') }).allow,
    ).toBe(want);
  });
});

describe('decision matrix: consent directives', () => {
  const consent = (c: Partial<Consent>): Consent => ({
    denyUsers: [],
    denyRoles: [],
    withholdCategories: [],
    portalOptOut: false,
    ...c,
  });
  const mh = (who: 'me' | 'other') => record('normal', who, { categories: ['mental-health'] });

  it.each([
    // [name, roles, rel, consent, resource, expected allow, expected consentOverride]
    ['deny me by name, on team', ['clinician'], 'team', { denyUsers: [ME] }, 'chart', false, false],
    ['deny me by name, break-glass overrides', ['clinician'], 'bg', { denyUsers: [ME] }, 'chart', true, true],
    ['deny someone else', ['clinician'], 'team', { denyUsers: [COLLEAGUE] }, 'chart', true, false],
    ['deny my role (nurse)', ['nurse'], 'team', { denyRoles: ['nurse'] }, 'chart', false, false],
    [
      'deny nurse, I am also clinician',
      ['nurse', 'clinician'],
      'team',
      { denyRoles: ['nurse'] },
      'chart',
      true,
      false,
    ],
    ['deny billing', ['billing'], 'off', { denyRoles: ['billing'] }, 'chart', false, false],
    ['deny front desk', ['frontdesk'], 'off', { denyRoles: ['frontdesk'] }, 'patient', false, false],
    [
      'deny front desk, billing unaffected',
      ['billing'],
      'off',
      { denyRoles: ['frontdesk'] },
      'patient',
      true,
      false,
    ],
    [
      'withhold mental health: not author',
      ['clinician'],
      'team',
      { withholdCategories: ['mental-health'] },
      'mh-other',
      false,
      false,
    ],
    [
      'withhold mental health: author',
      ['clinician'],
      'team',
      { withholdCategories: ['mental-health'] },
      'mh-me',
      true,
      false,
    ],
    [
      'withhold mental health: break-glass overrides',
      ['clinician'],
      'bg',
      { withholdCategories: ['mental-health'] },
      'mh-other',
      true,
      true,
    ],
    [
      'withhold mental health: billing',
      ['billing'],
      'off',
      { withholdCategories: ['mental-health'] },
      'mh-other',
      false,
      false,
    ],
    [
      'withhold substance use: a mental-health record unaffected',
      ['clinician'],
      'team',
      { withholdCategories: ['substance-use'] },
      'mh-other',
      true,
      false,
    ],
    [
      'withhold mental health: nurse',
      ['nurse'],
      'team',
      { withholdCategories: ['mental-health'] },
      'mh-other',
      false,
      false,
    ],
    [
      'portal opt-out does not affect staff',
      ['clinician'],
      'team',
      { portalOptOut: true },
      'chart',
      true,
      false,
    ],
  ] as const)('%s', (_name, roles, rel, c, res, want, override) => {
    const resource: Resource =
      res === 'chart' || res === 'patient'
        ? { kind: res }
        : { kind: 'record', record: mh(res === 'mh-me' ? 'me' : 'other') };
    const d = decide(subject([...roles]), 'read', resource, { patient: facts(rel, { consent: consent(c) }) });
    expect(d.allow).toBe(want);
    if (d.allow) {
      expect(d.consentOverride).toBe(override);
      expect(d.via).toBe(rel === 'bg' ? 'break-glass' : rel === 'team' ? 'care-team' : 'practice');
    }
  });

  it('break-glass is possible for a team member the patient denied', () => {
    const d = decide(
      subject(['clinician']),
      'break-glass',
      { kind: 'patient' },
      { patient: facts('team', { consent: consent({ denyUsers: [ME] }) }) },
    );
    expect(d).toMatchObject({ allow: true, consentOverride: true });
  });
});

describe('decision matrix: secure messages', () => {
  const MESSAGES: Resource = { kind: 'section', section: 'messages' };
  // Read and write of a patient's messages, by role and relationship (Y allowed, - denied).
  const WANT: Record<Exclude<Role, 'patient'>, Record<Rel, string>> = {
    clinician: { team: 'YY', off: '--', bg: 'YY', bgExpired: '--' },
    nurse: { team: 'YY', off: '--', bg: 'YY', bgExpired: '--' },
    frontdesk: { team: '--', off: '--', bg: '--', bgExpired: '--' },
    billing: { team: '--', off: '--', bg: '--', bgExpired: '--' },
    admin: { team: '--', off: '--', bg: '--', bgExpired: '--' },
    privacy_officer: { team: '--', off: '--', bg: '--', bgExpired: '--' },
  };
  const cases = Object.entries(WANT).flatMap(([role, rels]) =>
    REL.map((rel) => ({ role: role as Role, rel, want: rels[rel] })),
  );
  it.each(cases)('$role, $rel', ({ role, rel, want }) => {
    const got = (['read', 'write'] as const)
      .map((a) => (decide(subject([role]), a, MESSAGES, { patient: facts(rel) }).allow ? 'Y' : '-'))
      .join('');
    expect(got).toBe(want);
  });

  it('a patient reads and writes messages in their own chart only, and nothing else of it', () => {
    const self = facts('off', { self: true });
    const patient = subject(['patient'], 'patient');
    expect(decide(patient, 'read', MESSAGES, { patient: self }).allow).toBe(true);
    expect(decide(patient, 'write', MESSAGES, { patient: self }).allow).toBe(true);
    expect(decide(patient, 'write', MESSAGES, { patient: facts('off') }).allow).toBe(false);
    expect(decide(patient, 'read', MESSAGES, { patient: facts('off') }).allow).toBe(false);
    const optedOut = facts('off', {
      self: true,
      consent: { denyUsers: [], denyRoles: [], withholdCategories: [], portalOptOut: true },
    });
    expect(decide(patient, 'write', MESSAGES, { patient: optedOut }).allow).toBe(false);
    for (const section of ['demographics', 'note', 'appointments'] as const) {
      expect(decide(patient, 'write', { kind: 'section', section }, { patient: self }).allow).toBe(false);
    }
  });

  it('has an inbox for roles that read messages in care, and none for anyone else', () => {
    for (const role of ROLES) {
      const kind = role === 'patient' ? 'patient' : 'user';
      const d = decide(subject([role], kind), 'inbox', { kind: 'practice' }, { patient: null });
      expect(d.allow, role).toBe(role === 'clinician' || role === 'nurse');
    }
  });
});

describe('decision matrix: the patient in the portal', () => {
  const self = (extra: Partial<PatientFacts> = {}) => facts('off', { self: true, ...extra });
  it.each([
    ['released normal record', record('normal', 'other', { released: true }), self(), true],
    ['unreleased normal record', record('normal', 'other'), self(), false],
    ['released restricted record', record('restricted', 'other', { released: true }), self(), true],
    ['released psychotherapy note', record('psychotherapy', 'other', { released: true }), self(), false],
    ["someone else's record", record('normal', 'other', { released: true }), facts('off'), false],
    [
      'opted out of the portal',
      record('normal', 'other', { released: true }),
      self({ consent: { denyUsers: [], denyRoles: [], withholdCategories: [], portalOptOut: true } }),
      false,
    ],
  ] as const)('%s', (_n, r, f, want) => {
    expect(
      decide(subject(['patient'], 'patient'), 'read', { kind: 'record', record: r }, { patient: f }).allow,
    ).toBe(want);
  });
  it('sees their own demographics and contact', () => {
    const d = decide(subject(['patient'], 'patient'), 'read', { kind: 'patient' }, { patient: self() });
    expect(d.allow && d.view).toEqual({ demographics: ALL, contact: ALL });
  });
});

// --- properties, over the whole finite space of facts ---

const ROLE_SETS: Role[][] = [];
for (let mask = 1; mask < 1 << ROLES.length; mask++) {
  ROLE_SETS.push(ROLES.filter((_, i) => mask & (1 << i)));
}
const FACTS: PatientFacts[] = [];
for (const onTeam of [false, true]) {
  for (const restricted of [false, true]) {
    for (const breakGlass of [null, GRANT]) {
      for (const self of [false, true]) {
        FACTS.push({ onTeam, restricted, breakGlass, self, consent: null });
      }
    }
  }
}
const RECORDS: RecordFacts[] = [];
for (const sensitivity of ['normal', 'restricted', 'psychotherapy'] as const) {
  for (const who of ['me', 'other', 'shared'] as const) {
    for (const categories of [[], ['mental-health']]) {
      for (const section of ['condition', 'note', 'observation'] as const) {
        RECORDS.push(record(sensitivity, who, { categories, section, released: who === 'other' }));
      }
    }
  }
}
const RESOURCES: Resource[] = [
  { kind: 'patient' },
  { kind: 'chart' },
  ...SECTIONS.map((section) => ({ kind: 'section' as const, section })),
  ...RECORDS.map((r) => ({ kind: 'record' as const, record: r })),
];
const READS: Action[] = ['read', 'export'];
const CONTENT = SECTIONS.filter((s) => s !== 'appointments');

describe('properties', () => {
  it('no combination gives admin or privacy_officer chart content without break-glass', () => {
    let checked = 0;
    for (const roles of [['admin'], ['privacy_officer'], ['admin', 'privacy_officer']] as Role[][]) {
      for (const f of FACTS) {
        for (const action of [...READS, 'write'] as Action[]) {
          for (const resource of RESOURCES) {
            const d = decide(subject(roles), action, resource, { patient: f });
            checked++;
            if (d.allow) {
              expect(CONTENT.filter((s) => d.view[s] !== undefined)).toEqual([]);
            }
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(1000);
  });

  it('adding a consent restriction never widens access', () => {
    const base: Consent = { denyUsers: [], denyRoles: [], withholdCategories: [], portalOptOut: false };
    const restrictions: Consent[] = [
      { ...base, denyUsers: [ME] },
      { ...base, denyRoles: ['clinician'] },
      { ...base, denyRoles: ['nurse', 'billing'] },
      { ...base, withholdCategories: ['mental-health'] },
      { ...base, portalOptOut: true },
    ];
    const width = (d: ReturnType<typeof decide>) =>
      d.allow
        ? Object.entries(d.view).map(([s, f]) => `${s}:${f === ALL ? '*' : [...f].sort().join('|')}`)
        : [];
    let checked = 0;
    for (const roles of ROLE_SETS) {
      for (const f of FACTS) {
        for (const action of READS) {
          for (const resource of RESOURCES) {
            const without = decide(
              subject(roles, roles.includes('patient') ? 'patient' : 'user'),
              action,
              resource,
              { patient: f },
            );
            for (const c of restrictions) {
              const withC = decide(
                subject(roles, roles.includes('patient') ? 'patient' : 'user'),
                action,
                resource,
                { patient: { ...f, consent: c } },
              );
              checked++;
              if (withC.allow) {
                expect(without.allow).toBe(true);
                const w = new Set(width(without));
                for (const x of width(withC)) {
                  if (!w.has(x)) {
                    // A field list may only be the same or narrower; ALL covers any list.
                    const [s] = x.split(':');
                    expect(w.has(`${s}:*`)).toBe(true);
                  }
                }
              }
            }
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(100_000);
  });

  it('grant tables name only known sections', () => {
    for (const g of Object.values(GRANTS)) {
      for (const s of [...Object.keys(g.read), ...g.write]) {
        expect(SECTIONS).toContain(s);
      }
    }
  });
});
