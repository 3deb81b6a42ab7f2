import {
  ALL,
  CLINICAL_SECTIONS,
  type ClinicalSection,
  type Fields,
  GRANTS,
  IDENTITY_SECTIONS,
  type Role,
  type RoleGrant,
  SECTIONS,
  type Section,
} from './grants.ts';

/**
 * The policy: a pure function, deny by default (DESIGN.md invariant 6). `decide` does no I/O;
 * the facts it needs (care-team membership, restriction, consent, break-the-glass grants) are
 * loaded before it runs. It answers whether the subject may act and, for reads, which sections
 * and fields they may see (minimum necessary).
 */

export type Action =
  /** Read, list, history, the chart. */
  | 'read'
  /** Create or update a section (identity or a clinical record). */
  | 'write'
  /** Per-patient export (right of access); psychotherapy notes are never exported. */
  | 'export'
  /** Search the practice's patients (each result is then decided as a `read`). */
  | 'search'
  | 'create-patient'
  /** Add or end care-team membership. */
  | 'care-team'
  | 'consent'
  /** Flag a patient restricted or not. */
  | 'flag'
  /** Share a psychotherapy note with a colleague (its author only). */
  | 'share'
  /** Release a record to the patient portal. */
  | 'release'
  /** Request emergency access. */
  | 'break-glass'
  /** Look up a patient's audit pseudonym for an access report. */
  | 'report'
  /**
   * The staff inbox of secure messages: list, across the patients the subject reaches, the
   * threads with messages waiting for them (each patient is then decided as a `read` of `messages`).
   */
  | 'inbox'
  | 'import'
  /**
   * Every patient of the practice into one encrypted archive (the practice, then each record):
   * users with the `bulkExport` grant only, never the system actor, never psychotherapy notes.
   */
  | 'bulk-export';

export interface Subject {
  readonly kind: 'user' | 'patient' | 'system';
  readonly id: string;
  readonly roles: readonly Role[];
}

export const CONSENT_CATEGORIES = ['mental-health', 'substance-use', 'sexual-health'] as const;
export type ConsentCategory = (typeof CONSENT_CATEGORIES)[number];

/** A patient's consent directives. */
export interface Consent {
  /** Users who may not see this chart at all (break-the-glass may override, flagged). */
  readonly denyUsers: readonly string[];
  /** Roles whose grants do not apply to this chart. */
  readonly denyRoles: readonly Role[];
  /** Records in these categories are visible to their author only. */
  readonly withholdCategories: readonly ConsentCategory[];
  /** Nothing is released to the patient portal. */
  readonly portalOptOut: boolean;
}

/** What is known about the patient a resource belongs to, relative to the subject. */
export interface PatientFacts {
  readonly restricted: boolean;
  /** The subject is a current member of the patient's care team. */
  readonly onTeam: boolean;
  /** The subject's active break-the-glass grant for this patient, if any. */
  readonly breakGlass: string | null;
  readonly consent: Consent | null;
  /** The subject is this patient (portal). */
  readonly self: boolean;
}

export type Sensitivity = 'normal' | 'restricted' | 'psychotherapy';

export interface RecordFacts {
  readonly section: ClinicalSection;
  readonly sensitivity: Sensitivity;
  readonly authorId: string;
  /** The author shared this (psychotherapy) record with the subject. */
  readonly sharedWithSubject: boolean;
  readonly categories: readonly string[];
  readonly released: boolean;
}

export type Resource =
  /** The practice as a whole: search, import, registering a patient. */
  | { readonly kind: 'practice' }
  /** The patient's identity (demographics and contact). */
  | { readonly kind: 'patient' }
  /** The whole chart: identity plus every section. */
  | { readonly kind: 'chart' }
  /** One section, e.g. writing demographics or creating a record of a kind and sensitivity. */
  | { readonly kind: 'section'; readonly section: Section; readonly sensitivity?: Sensitivity }
  /** One existing clinical record. */
  | { readonly kind: 'record'; readonly record: RecordFacts };

export interface Facts {
  /** Facts about the resource's patient; null when the patient does not exist in the practice. */
  readonly patient: PatientFacts | null;
}

/** How the subject reached the chart. */
export type Via = 'system' | 'self' | 'care-team' | 'practice' | 'break-glass' | 'author';

export type View = Readonly<Partial<Record<Section, Fields>>>;

export interface Allow {
  readonly allow: true;
  /** What the subject may see (reads); for other actions, what the granting roles read. */
  readonly view: View;
  readonly via: Via;
  /** The break-the-glass grant this decision relies on. */
  readonly grantId: string | null;
  /** A consent directive was overridden by break-the-glass (emergency treatment). */
  readonly consentOverride: boolean;
  /** The patient is flagged restricted (each access shows in the anomaly report). */
  readonly restricted: boolean;
}

export type DenyReason =
  | 'not-found'
  | 'no-relationship'
  | 'no-grant'
  | 'actor-kind'
  | 'consent'
  | 'sensitivity'
  | 'not-needed';

export interface Deny {
  readonly allow: false;
  readonly reason: DenyReason;
}

export type Decision = Allow | Deny;

const DENY: Readonly<Record<DenyReason, Deny>> = Object.freeze(
  Object.fromEntries(
    (
      [
        'not-found',
        'no-relationship',
        'no-grant',
        'actor-kind',
        'consent',
        'sensitivity',
        'not-needed',
      ] as const
    ).map((r) => [r, Object.freeze({ allow: false as const, reason: r })]),
  ) as Record<DenyReason, Deny>,
);

const FULL_VIEW: View = Object.freeze(Object.fromEntries(SECTIONS.map((s) => [s, ALL])));
const EMPTY_VIEW: View = Object.freeze({});

const SYSTEM_ALLOW: Allow = Object.freeze({
  allow: true,
  view: FULL_VIEW,
  via: 'system',
  grantId: null,
  consentOverride: false,
  restricted: false,
});

/** The reach of one role to one patient, or null. */
type Reach = 'care-team' | 'practice' | 'self' | 'break-glass';

function reachOf(subject: Subject, g: RoleGrant, role: Role, p: PatientFacts): Reach | null {
  const c = p.consent;
  const consentDenies = c !== null && (c.denyUsers.includes(subject.id) || c.denyRoles.includes(role));
  switch (g.scope) {
    case 'care-team':
      if (p.onTeam && !consentDenies) {
        return 'care-team';
      }
      return p.breakGlass !== null && g.breakGlass ? 'break-glass' : null;
    case 'practice':
      // A restricted patient's chart needs explicit membership; roles without chart content
      // (the privacy officer's oversight) are not kept out of a restricted patient's consent or report.
      return consentDenies || (p.restricted && !p.onTeam && hasAny(g.read)) ? null : 'practice';
    case 'self':
      return subject.kind === 'patient' && p.self && !(c?.portalOptOut ?? false) ? 'self' : null;
    default:
      return null;
  }
}

/** Whether a role reaching a patient this way may see one record (sensitivity, consent, release). */
function recordVisible(
  subject: Subject,
  g: RoleGrant,
  reach: Reach,
  r: RecordFacts,
  p: PatientFacts,
  action: Action,
): boolean {
  const author = r.authorId === subject.id;
  switch (r.sensitivity) {
    case 'psychotherapy':
      // 45 CFR 164.508(a)(2): the author, and colleagues the author shared it with; never
      // exported, never in the portal, never through break-the-glass alone.
      if (action === 'export' || reach === 'self' || !g.sensitivities.includes('psychotherapy')) {
        return false;
      }
      if (!(author || (r.sharedWithSubject && action === 'read'))) {
        return false;
      }
      break;
    case 'restricted':
      if (!g.sensitivities.includes('restricted')) {
        return false;
      }
      if (reach === 'self') {
        break;
      }
      if (!(reach === 'care-team' || author)) {
        return false;
      }
      break;
    default:
      if (!g.sensitivities.includes('normal')) {
        return false;
      }
  }
  if (reach === 'self') {
    return r.released;
  }
  const withheld = p.consent?.withholdCategories;
  if (withheld && withheld.length > 0 && !author && reach !== 'break-glass') {
    for (const cat of r.categories) {
      if ((withheld as readonly string[]).includes(cat)) {
        return false;
      }
    }
  }
  return true;
}

const withheldApplies = (p: PatientFacts, r: RecordFacts, subjectId: string): boolean => {
  const w = p.consent?.withholdCategories;
  return !!w && r.authorId !== subjectId && r.categories.some((c) => (w as readonly string[]).includes(c));
};

/** Whether one role reaching a patient grants the action on the resource; the fields it shows. */
function grantFor(
  subject: Subject,
  g: RoleGrant,
  reach: Reach,
  action: Action,
  resource: Resource,
  p: PatientFacts,
): View | Fields | null {
  const direct = reach !== 'break-glass';
  switch (action) {
    case 'read':
    case 'export': {
      if (action === 'export' && !g.export) {
        return null;
      }
      switch (resource.kind) {
        case 'patient':
          return identityView(g.read);
        case 'chart':
          return hasAny(g.read) ? g.read : null;
        case 'section':
          return g.read[resource.section] ?? null;
        case 'record': {
          const fields = g.read[resource.record.section];
          return fields && recordVisible(subject, g, reach, resource.record, p, action) ? fields : null;
        }
        default:
          return null;
      }
    }
    case 'write': {
      if (reach === 'self') {
        // Through the portal a patient writes only messages, in their own threads; nothing of the chart.
        return resource.kind === 'section' && resource.section === 'messages' && g.write.includes('messages')
          ? ALL
          : null;
      }
      if (resource.kind === 'section') {
        if (!g.write.includes(resource.section)) {
          return null;
        }
        const clinical = (CLINICAL_SECTIONS as readonly string[]).includes(resource.section);
        return clinical && !g.sensitivities.includes(resource.sensitivity ?? 'normal') ? null : ALL;
      }
      if (resource.kind === 'record') {
        const r = resource.record;
        if (!g.write.includes(r.section)) {
          return null;
        }
        // Only its author changes a psychotherapy note; sharing lets a colleague read it.
        if (r.sensitivity === 'psychotherapy' && r.authorId !== subject.id) {
          return null;
        }
        return recordVisible(subject, g, reach, { ...r, sharedWithSubject: false }, p, 'read') ? ALL : null;
      }
      return null;
    }
    case 'care-team':
      return g.careTeam && direct ? ALL : null;
    case 'consent':
      return g.consent && direct ? ALL : null;
    case 'flag':
      return g.flag && direct ? ALL : null;
    case 'report':
      return g.report && direct ? ALL : null;
    case 'release':
      return g.release &&
        reach === 'care-team' &&
        resource.kind === 'record' &&
        resource.record.sensitivity !== 'psychotherapy' &&
        recordVisible(subject, g, reach, resource.record, p, 'read')
        ? ALL
        : null;
    case 'share':
      return resource.kind === 'record' &&
        resource.record.sensitivity === 'psychotherapy' &&
        resource.record.authorId === subject.id &&
        reach === 'care-team' &&
        g.sensitivities.includes('psychotherapy')
        ? ALL
        : null;
    default:
      return null;
  }
}

const hasAny = (v: View): boolean => {
  for (const _ in v) {
    return true;
  }
  return false;
};

const identityViews = new WeakMap<object, View | null>();
function identityView(read: View): View | null {
  let v = identityViews.get(read);
  if (v === undefined) {
    const entries = IDENTITY_SECTIONS.filter((s) => read[s] !== undefined).map((s) => [s, read[s]]);
    v = entries.length > 0 ? Object.freeze(Object.fromEntries(entries) as View) : null;
    identityViews.set(read, v);
  }
  return v;
}

/** The union of two field lists. */
export function unionFields(a: Fields | undefined, b: Fields | undefined): Fields | undefined {
  if (a === undefined) {
    return b;
  }
  if (b === undefined || a === b) {
    return a;
  }
  if (a === ALL || b === ALL) {
    return ALL;
  }
  return [...new Set([...a, ...b])];
}

function unionView(a: View, b: View): View {
  const out: Partial<Record<Section, Fields>> = { ...a };
  for (const s of Object.keys(b) as Section[]) {
    const u = unionFields(out[s], b[s]);
    if (u !== undefined) {
      out[s] = u;
    }
  }
  return out;
}

const REACH_ORDER: Readonly<Record<Reach, number>> = {
  self: 0,
  'care-team': 1,
  practice: 2,
  'break-glass': 3,
};

/** Frozen allow decisions for the common single-role cases, so the hot path allocates nothing. */
const allowCache = new Map<string, Allow>();
function allowOf(view: View, via: Via, restricted: boolean, key: string | null): Allow {
  if (key !== null) {
    const hit = allowCache.get(key);
    if (hit) {
      return hit;
    }
  }
  const a: Allow = Object.freeze({
    allow: true,
    view,
    via,
    grantId: null,
    consentOverride: false,
    restricted,
  });
  if (key !== null) {
    allowCache.set(key, a);
  }
  return a;
}

/**
 * Decides whether `subject` may perform `action` on `resource`, given facts loaded beforehand.
 * Deny by default; a role the subject holds contributes only through its grant table and its
 * reach to this patient; several roles are a union. "Not found" and "not allowed" are both
 * denials; the gate answers both the same way.
 */
export function decide(subject: Subject, action: Action, resource: Resource, facts: Facts): Decision {
  if (action === 'bulk-export') {
    return decideBulkExport(subject, resource);
  }
  if (subject.kind === 'system') {
    if (
      action === 'export' &&
      resource.kind === 'record' &&
      resource.record.sensitivity === 'psychotherapy'
    ) {
      return DENY.sensitivity;
    }
    if (resource.kind !== 'practice' && facts.patient === null) {
      return DENY['not-found'];
    }
    return SYSTEM_ALLOW;
  }
  if (action === 'import') {
    return DENY['actor-kind'];
  }
  if (resource.kind === 'practice') {
    return decidePractice(subject, action);
  }
  const p = facts.patient;
  if (p === null) {
    return DENY['not-found'];
  }
  if (action === 'break-glass') {
    return decideBreakGlass(subject, p);
  }
  let result: View | Fields | null = null;
  let via: Reach | null = null;
  let usedGrant = false;
  let consentOverride = false;
  let anyReach = false;
  let single = true;
  for (const role of subject.roles) {
    const g = GRANTS[role];
    if (g === undefined) {
      continue;
    }
    const reach = reachOf(subject, g, role, p);
    if (reach === null) {
      continue;
    }
    anyReach = true;
    const granted = grantFor(subject, g, reach, action, resource, p);
    if (granted === null) {
      continue;
    }
    if (reach === 'break-glass') {
      usedGrant = true;
      const c = p.consent;
      if (
        c !== null &&
        (c.denyUsers.includes(subject.id) ||
          c.denyRoles.includes(role) ||
          (resource.kind === 'record' && withheldApplies(p, resource.record, subject.id)))
      ) {
        consentOverride = true;
      }
    }
    if (via === null || REACH_ORDER[reach] < REACH_ORDER[via]) {
      via = reach;
    }
    if (result === null) {
      result = granted;
    } else {
      single = false;
      result = mergeGrant(result, granted);
    }
  }
  if (result === null || via === null) {
    return anyReach
      ? resource.kind === 'record'
        ? DENY.sensitivity
        : DENY['no-grant']
      : DENY['no-relationship'];
  }
  const view = toView(result, resource);
  const restricted = p.restricted;
  if (usedGrant) {
    return Object.freeze({
      allow: true,
      view,
      via: 'break-glass',
      grantId: p.breakGlass,
      consentOverride,
      restricted,
    });
  }
  const author = resource.kind === 'record' && resource.record.authorId === subject.id;
  const finalVia: Via = author && resource.record.sensitivity !== 'normal' ? 'author' : via;
  const key =
    single && subject.roles.length === 1 && typeof result === 'object' && result !== null
      ? `${subject.roles[0]}|${finalVia}|${restricted}|${action}|${resource.kind}|${resource.kind === 'section' ? resource.section : resource.kind === 'record' ? resource.record.section : ''}`
      : null;
  return allowOf(view, finalVia, restricted, key);
}

function mergeGrant(a: View | Fields, b: View | Fields): View | Fields {
  if (isFields(a) && isFields(b)) {
    return unionFields(a, b) ?? a;
  }
  if (!isFields(a) && !isFields(b)) {
    return unionView(a, b);
  }
  return a;
}

const isFields = (x: View | Fields): x is Fields => x === ALL || Array.isArray(x);

const sectionViews = new Map<string, View>();
function toView(g: View | Fields, resource: Resource): View {
  if (!isFields(g)) {
    return g;
  }
  const section =
    resource.kind === 'section'
      ? resource.section
      : resource.kind === 'record'
        ? resource.record.section
        : null;
  if (section === null) {
    return g === ALL ? FULL_VIEW : EMPTY_VIEW;
  }
  if (g === ALL) {
    let v = sectionViews.get(section);
    if (!v) {
      v = Object.freeze({ [section]: ALL });
      sectionViews.set(section, v);
    }
    return v;
  }
  return { [section]: g };
}

function decidePractice(subject: Subject, action: Action): Decision {
  if (subject.kind !== 'user') {
    return DENY['actor-kind'];
  }
  let view: View | null = null;
  for (const role of subject.roles) {
    const g = GRANTS[role];
    if (g === undefined) {
      continue;
    }
    if (action === 'search' && identityView(g.read) !== null) {
      view = view === null ? (identityView(g.read) as View) : unionView(view, identityView(g.read) as View);
    }
    if (action === 'create-patient' && g.write.includes('demographics')) {
      view = view === null ? (identityView(g.read) as View) : unionView(view, identityView(g.read) as View);
    }
    const messages = g.read.messages;
    if (action === 'inbox' && messages !== undefined && g.scope !== 'self') {
      view = view === null ? { messages } : unionView(view, { messages });
    }
  }
  return view === null ? DENY['no-grant'] : allowOf(view, 'practice', false, null);
}

const BULK_EXPORT_ALLOW: Allow = Object.freeze({
  allow: true,
  view: FULL_VIEW,
  via: 'practice',
  grantId: null,
  consentOverride: false,
  restricted: false,
});

/**
 * The bulk export: a person holding a role with the `bulkExport` grant (the privacy officer),
 * never the system actor (an export of everything needs someone to answer for it). Decided for
 * the practice and per record, not per patient: care teams, the restricted flag and consent
 * directives govern who reads a chart in care, while this is the practice's own copy of its
 * records (migration, legal hold, backup verification), made into an encrypted archive the
 * exporter cannot read through Custos. Psychotherapy notes are never in it (45 CFR 164.508(a)(2)).
 */
function decideBulkExport(subject: Subject, resource: Resource): Decision {
  if (subject.kind !== 'user') {
    return DENY['actor-kind'];
  }
  if (!subject.roles.some((r) => GRANTS[r]?.bulkExport)) {
    return DENY['no-grant'];
  }
  switch (resource.kind) {
    case 'practice':
      return BULK_EXPORT_ALLOW;
    case 'record':
      return resource.record.sensitivity === 'psychotherapy' ? DENY.sensitivity : BULK_EXPORT_ALLOW;
    default:
      return DENY['no-grant'];
  }
}

/**
 * A clinician or nurse may request emergency access to a patient they cannot otherwise reach:
 * not on the care team, or on it but excluded by a consent directive (overridden only for
 * emergency treatment, and recorded so).
 */
function decideBreakGlass(subject: Subject, p: PatientFacts): Decision {
  if (subject.kind !== 'user') {
    return DENY['actor-kind'];
  }
  const eligible = subject.roles.filter((r) => GRANTS[r]?.breakGlass);
  if (eligible.length === 0) {
    return DENY['no-grant'];
  }
  const reachable = eligible.some((r) => {
    const reach = reachOf(subject, GRANTS[r], r, { ...p, breakGlass: null });
    return reach === 'care-team';
  });
  if (reachable) {
    return DENY['not-needed'];
  }
  const c = p.consent;
  const overridesConsent =
    c !== null && (c.denyUsers.includes(subject.id) || eligible.every((r) => c.denyRoles.includes(r)));
  return Object.freeze({
    allow: true,
    view: EMPTY_VIEW,
    via: 'break-glass',
    grantId: null,
    consentOverride: overridesConsent,
    restricted: p.restricted,
  });
}

/** The subject of an access context: its actor and the roles it holds. */
export function subjectOf(ctx: {
  readonly actor: { readonly kind: 'user' | 'patient' | 'system'; readonly id: string };
  readonly role: string;
  readonly roles?: readonly string[];
}): Subject {
  const roles = (ctx.roles ?? (ctx.role ? ctx.role.split(',') : [])).filter((r): r is Role => r in GRANTS);
  return { kind: ctx.actor.kind, id: ctx.actor.id, roles };
}

/** Keeps only the fields a view allows of an object (identity or record body). */
export function project<T extends object>(body: T, fields: Fields): Partial<T> {
  if (fields === ALL) {
    return body;
  }
  const out: Record<string, unknown> = {};
  for (const f of fields) {
    if (f in body) {
      out[f] = (body as Record<string, unknown>)[f];
    }
  }
  return out as Partial<T>;
}
