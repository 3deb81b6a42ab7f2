/**
 * The code systems, extension URLs and code tables the FHIR R4 mapping uses, in one place so
 * that import and export cannot drift apart. Every table here is read in both directions.
 */

/** Custos user ids travel as identifiers in this system (note author, encounter clinician). */
export const CUSTOS_USER_SYSTEM = 'urn:custos:user';
/** Custos encounter types (`visit`, `therapy-session`, ...); FHIR has no universal value set for them. */
export const CUSTOS_ENCOUNTER_TYPE_SYSTEM = 'urn:custos:encounter-type';

/** https://terminology.hl7.org/CodeSystem-v3-Confidentiality.html — `R` restricted. */
export const V3_CONFIDENTIALITY = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality';
/** https://terminology.hl7.org/CodeSystem-v3-ActCode.html — `PSY` psychiatry/psychotherapy, and encounter classes. */
export const V3_ACT_CODE = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
/** https://terminology.hl7.org/CodeSystem-v2-0203.html — identifier types. */
export const V2_IDENTIFIER_TYPE = 'http://terminology.hl7.org/CodeSystem/v2-0203';
export const CONDITION_CLINICAL = 'http://terminology.hl7.org/CodeSystem/condition-clinical';
export const CONDITION_VER_STATUS = 'http://terminology.hl7.org/CodeSystem/condition-ver-status';
/**
 * US Core DocumentReference category; `clinical-note` marks a DocumentReference that is a note.
 * Chosen over LOINC document classes because it is one code with exactly this meaning.
 */
export const US_CORE_DOCREF_CATEGORY =
  'http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category';
export const CLINICAL_NOTE = 'clinical-note';
/**
 * Gender identity (FHIR extensions pack). A complex extension: the identity sits in the
 * sub-extension `value` as a CodeableConcept; we carry the patient's words in `.text`.
 */
export const GENDER_IDENTITY_EXT = 'http://hl7.org/fhir/StructureDefinition/individual-genderIdentity';
/** The R4 core predecessor with a plain `valueCodeableConcept`; accepted on import only. */
export const GENDER_IDENTITY_EXT_R4 = 'http://hl7.org/fhir/StructureDefinition/patient-genderIdentity';

export const US_SSN_SYSTEM = 'http://hl7.org/fhir/sid/us-ssn';
export const NL_BSN_SYSTEM = 'http://fhir.nl/fhir/NamingSystem/bsn';

/**
 * Identifier mapping (round-trips): export writes `type.coding[0]` in v2-0203 with the first
 * code of each list; import reads the first v2-0203 code it knows, else falls back to a known
 * national-identifier system. Identifiers matching neither are not imported (the model holds
 * only these three kinds).
 */
export const IDENTIFIER_TYPE_CODES = {
  mrn: ['MR'],
  national: ['NI', 'SS', 'SB', 'NN'],
  insurance: ['MB', 'SN', 'NH'],
} as const;
export const NATIONAL_ID_SYSTEMS: readonly string[] = [US_SSN_SYSTEM, NL_BSN_SYSTEM];

export const ENCOUNTER_CLASS_DISPLAY = { AMB: 'ambulatory', VR: 'virtual', HH: 'home health' } as const;

/** The Content-Type a note's attachment is written with; import accepts any `text/plain`. */
export const NOTE_CONTENT_TYPE = 'text/plain; charset=utf-8';
