import { isIP } from 'node:net';
import type * as fhir4 from '../fhir/r4.ts';
import type { StoredEntry } from './canonical.ts';
import { LOGIN_ACTIONS, MFA_PREFIX } from './report.ts';

/**
 * Audit entries as FHIR R4 AuditEvent resources (https://hl7.org/fhir/R4/auditevent.html), in the
 * style of IHE Basic Audit Log Patterns (BALP, https://profiles.ihe.net/ITI/BALP/): the acting
 * agent as requestor, the patient as an entity identified by its pseudonym (never a name or a
 * direct identifier, DESIGN.md invariant 5), the resource as a second entity, and the purpose of
 * use as a v3 PurposeOfUse code.
 */

export interface AuditEventAgent {
  type?: fhir4.CodeableConcept;
  role?: fhir4.CodeableConcept[];
  who?: fhir4.Reference;
  requestor: boolean;
  network?: { address?: string; type?: '1' | '2' | '3' | '4' | '5' };
}

export interface AuditEventEntity {
  what?: fhir4.Reference;
  type?: fhir4.Coding;
  role?: fhir4.Coding;
  detail?: { type: string; valueString: string }[];
}

export interface AuditEvent {
  resourceType: 'AuditEvent';
  id?: string;
  type: fhir4.Coding;
  subtype?: fhir4.Coding[];
  action?: 'C' | 'R' | 'U' | 'D' | 'E';
  recorded: string;
  outcome?: '0' | '4' | '8' | '12';
  outcomeDesc?: string;
  purposeOfEvent?: fhir4.CodeableConcept[];
  agent: AuditEventAgent[];
  source: { site?: string; observer: fhir4.Reference; type?: fhir4.Coding[] };
  entity?: AuditEventEntity[];
}

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const EVENT_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-event-type';
const RESTFUL = 'http://hl7.org/fhir/restful-interaction';
const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const SOURCE_TYPE = 'http://terminology.hl7.org/CodeSystem/security-source-type';
const PURPOSE = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
const PARTICIPATION = 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType';
export const CUSTOS_ACTION = 'urn:custos:audit-action';
export const CUSTOS_PSEUDONYM = 'urn:custos:pseudonym';
export const CUSTOS_PRACTICE = 'urn:custos:practice';

const PATIENT_RECORD: fhir4.Coding = { system: DCM, code: '110110', display: 'Patient Record' };
const USER_AUTHENTICATION: fhir4.Coding = { system: DCM, code: '110114', display: 'User Authentication' };
const AUDIT_LOG_USED: fhir4.Coding = { system: DCM, code: '110101', display: 'Audit Log Used' };
const REST: fhir4.Coding = { system: EVENT_TYPE, code: 'rest', display: 'Restful Operation' };

/** Custos purposes that have an HL7 v3 PurposeOfUse code; the others go out as text. */
const PURPOSE_CODES: Record<string, [code: string, display: string]> = {
  treatment: ['TREAT', 'treatment'],
  emergency: ['ETREAT', 'Emergency Treatment'],
  payment: ['HPAYMT', 'healthcare payment'],
  operations: ['HOPERAT', 'healthcare operations'],
  'patient-request': ['PATRQT', 'patient requested'],
};

/**
 * Action code (C, R, U, D, E) and the FHIR RESTful interaction a Custos action corresponds to.
 * Searches and lists are queries (E, as BALP's Query profile); reading history and exporting a
 * chart read data (R); running an audit report executes a query over the trail (E).
 */
const ACTIONS: Record<string, { action: NonNullable<AuditEvent['action']>; interaction?: string }> = {
  read: { action: 'R', interaction: 'read' },
  history: { action: 'R', interaction: 'history-instance' },
  export: { action: 'R', interaction: 'operation' },
  create: { action: 'C', interaction: 'create' },
  import: { action: 'C', interaction: 'transaction' },
  update: { action: 'U', interaction: 'update' },
  'care-team': { action: 'U', interaction: 'update' },
  delete: { action: 'D', interaction: 'delete' },
  search: { action: 'E', interaction: 'search-type' },
  list: { action: 'E', interaction: 'search-type' },
  report: { action: 'E', interaction: 'operation' },
  // The clinic API (issue 6).
  sign: { action: 'U', interaction: 'update' },
  amend: { action: 'C', interaction: 'create' },
  post: { action: 'C', interaction: 'create' },
  close: { action: 'U', interaction: 'update' },
  merge: { action: 'U', interaction: 'operation' },
  unmerge: { action: 'U', interaction: 'operation' },
  'download-token': { action: 'E', interaction: 'operation' },
  redeem: { action: 'R', interaction: 'read' },
  // A disclosure to a third party: data read for transmission (HIPAA 164.528).
  disclose: { action: 'R', interaction: 'operation' },
};

const OUTCOMES: Record<string, NonNullable<AuditEvent['outcome']>> = {
  success: '0',
  // BALP records a refused request as a minor failure: the system worked, the request was refused.
  denied: '4',
  error: '8',
};

const ACTOR_SYSTEMS: Record<string, string> = {
  user: 'urn:custos:user',
  system: 'urn:custos:system',
  patient: 'urn:custos:patient',
};

const PATIENT_RESOURCES = new Set(['patient', 'record', 'chart', 'care-team']);

export const isLoginAction = (action: string): boolean =>
  (LOGIN_ACTIONS as readonly string[]).includes(action) || action.startsWith(MFA_PREFIX);

/** The pseudonyms a search or list entry names in its detail. */
function listedPseudonyms(detail: unknown): string[] {
  const p = (detail as { pseudonyms?: unknown } | null)?.pseudonyms;
  return Array.isArray(p) ? p.filter((x): x is string => typeof x === 'string' && x !== '') : [];
}

function eventType(e: StoredEntry, pseudonyms: readonly string[]): fhir4.Coding {
  if (isLoginAction(e.action)) {
    return USER_AUTHENTICATION;
  }
  if (e.resource_type.startsWith('audit-')) {
    return AUDIT_LOG_USED;
  }
  if (e.patient_pseudonym || pseudonyms.length > 0 || PATIENT_RESOURCES.has(e.resource_type)) {
    return PATIENT_RECORD;
  }
  return REST;
}

function subtypes(action: string, interaction: string | undefined): fhir4.Coding[] {
  const out: fhir4.Coding[] = [{ system: CUSTOS_ACTION, code: action }];
  if (action === 'login') {
    out.push({ system: DCM, code: '110122', display: 'Login' });
  } else if (action === 'logout' || action === 'session-timeout') {
    out.push({ system: DCM, code: '110123', display: 'Logout' });
  } else if (interaction) {
    out.push({ system: RESTFUL, code: interaction });
  }
  return out;
}

const agentRef = (kind: string, id: string): fhir4.Reference => ({
  identifier: { system: ACTOR_SYSTEMS[kind] ?? `urn:custos:${kind}`, value: id },
});

function detailOf(detail: unknown): AuditEventEntity['detail'] {
  if (detail === null || typeof detail !== 'object' || Array.isArray(detail)) {
    return undefined;
  }
  const out = Object.entries(detail as Record<string, unknown>)
    // Listed pseudonyms become patient entities of their own.
    .filter(([k, v]) => k !== 'pseudonyms' && v !== null && v !== undefined && v !== '')
    .map(([k, v]) => ({
      type: k,
      valueString: Array.isArray(v) ? v.join(',') : typeof v === 'object' ? JSON.stringify(v) : String(v),
    }))
    .filter((d) => d.valueString.trim() !== '');
  return out.length > 0 ? out : undefined;
}

const patientEntity = (pseudonym: string): AuditEventEntity => ({
  what: { identifier: { system: CUSTOS_PSEUDONYM, value: pseudonym } },
  type: { system: ENTITY_TYPE, code: '1', display: 'Person' },
  role: { system: OBJECT_ROLE, code: '1', display: 'Patient' },
});

/**
 * Maps one stored audit entry to a FHIR R4 AuditEvent. `practiceId` names the observing practice
 * (default: the entry's own). The resource id is the entry's sequence number.
 *
 * @example
 *   const event = toAuditEvent(entry, {});
 *   event.entity?.[0]?.what?.identifier // { system: 'urn:custos:pseudonym', value: 'ps_...' }
 */
export function toAuditEvent(entry: StoredEntry, options: { practiceId?: string } = {}): AuditEvent {
  const listed = listedPseudonyms(entry.detail).filter((p) => p !== entry.patient_pseudonym);
  const mapped = ACTIONS[entry.action];
  const event: AuditEvent = {
    resourceType: 'AuditEvent',
    id: String(entry.seq),
    type: eventType(entry, listed),
    subtype: subtypes(entry.action, mapped?.interaction),
    action: mapped?.action ?? 'E',
    recorded: entry.at.toISOString(),
    outcome: OUTCOMES[entry.outcome] ?? '8',
    agent: [],
    source: {
      observer: {
        identifier: { system: CUSTOS_PRACTICE, value: options.practiceId ?? entry.practice_id },
        display: 'Custos',
      },
      type: [{ system: SOURCE_TYPE, code: '4', display: 'Application Server' }],
    },
  };
  if (entry.reason) {
    event.outcomeDesc = entry.reason;
  }
  const purpose = PURPOSE_CODES[entry.purpose];
  event.purposeOfEvent = [
    purpose
      ? { coding: [{ system: PURPOSE, code: purpose[0], display: purpose[1] }], text: entry.purpose }
      : { text: entry.purpose },
  ];

  const actor: AuditEventAgent = {
    who: agentRef(entry.actor_kind, entry.actor_id),
    requestor: true,
    role: [{ text: entry.role }],
  };
  if (entry.client_address) {
    actor.network = { address: entry.client_address, type: isIP(entry.client_address) ? '2' : '1' };
  }
  event.agent.push(actor);
  if (entry.on_behalf_of) {
    // NEN 7513: the user responsible for an action taken on their behalf.
    event.agent.push({
      type: { coding: [{ system: PARTICIPATION, code: 'RESP', display: 'responsible party' }] },
      who: agentRef('user', entry.on_behalf_of),
      requestor: false,
    });
  }

  const entities: AuditEventEntity[] = [];
  if (entry.patient_pseudonym) {
    entities.push(patientEntity(entry.patient_pseudonym));
  }
  for (const p of listed) {
    entities.push(patientEntity(p));
  }
  const resource: AuditEventEntity = {
    type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
    role: { system: OBJECT_ROLE, code: '4', display: 'Domain Resource' },
    // The Custos resource type as the display; its id, when the entry has one, as the identifier.
    what: {
      ...(entry.resource_id
        ? { identifier: { system: `urn:custos:${entry.resource_type}`, value: entry.resource_id } }
        : {}),
      display: entry.resource_type,
    },
  };
  const detail = detailOf(entry.detail);
  if (detail) {
    resource.detail = detail;
  }
  entities.push(resource);
  event.entity = entities;
  return event;
}

/**
 * Writes a FHIR R4 `collection` Bundle of AuditEvents page by page, so a large trail never sits in
 * memory; the chunks together are one JSON document. A bundle with no entries has no `entry`
 * element (FHIR forbids empty arrays). Returns how many entries were written.
 */
export async function writeAuditBundle(
  pages: AsyncIterable<readonly StoredEntry[]>,
  write: (chunk: string) => Promise<void> | void,
  options: { practiceId?: string; timestamp?: Date } = {},
): Promise<number> {
  const head = {
    resourceType: 'Bundle',
    type: 'collection',
    timestamp: (options.timestamp ?? new Date()).toISOString(),
  };
  // The head without its closing brace, so that `entry` can follow.
  await write(JSON.stringify(head).slice(0, -1));
  let n = 0;
  for await (const page of pages) {
    if (page.length === 0) {
      continue;
    }
    const chunk = page
      .map((e) =>
        JSON.stringify({ fullUrl: `urn:custos:audit-entry:${e.seq}`, resource: toAuditEvent(e, options) }),
      )
      .join(',');
    await write(`${n === 0 ? ',"entry":[' : ','}${chunk}`);
    n += page.length;
  }
  await write(n === 0 ? '}\n' : ']}\n');
  return n;
}
