/**
 * The subset of FHIR R4 (4.0.1, https://hl7.org/fhir/R4/) that Custos reads and writes.
 *
 * Why not `@types/fhir`: the installed version (3.0.2) declares only the STU3 `fhir` namespace,
 * with no `fhir4`. Import this module as a namespace (`import type * as fhir4 from './r4.ts'`)
 * so that code reads as `fhir4.Bundle`; swapping to a full R4 typing package later is a
 * one-line change per file.
 */

export interface Coding {
  system?: string;
  code?: string;
  display?: string;
}
export interface CodeableConcept {
  coding?: Coding[];
  text?: string;
}
export interface Identifier {
  type?: CodeableConcept;
  system?: string;
  value?: string;
}
export interface Reference {
  reference?: string;
  identifier?: Identifier;
  display?: string;
}
export interface Period {
  start?: string;
  end?: string;
}
export interface Quantity {
  value?: number;
  unit?: string;
  system?: string;
  code?: string;
}
export interface Annotation {
  text: string;
}
export interface Extension {
  url: string;
  valueCodeableConcept?: CodeableConcept;
  extension?: Extension[];
}
export interface Meta {
  security?: Coding[];
}
export interface Attachment {
  contentType?: string;
  data?: string;
  title?: string;
  size?: number;
}

interface ResourceBase {
  id?: string;
  meta?: Meta;
}

export interface Patient extends ResourceBase {
  resourceType: 'Patient';
  extension?: Extension[];
  identifier?: Identifier[];
  active?: boolean;
  name?: { use?: string; text?: string; family?: string; given?: string[] }[];
  telecom?: { system?: string; value?: string; use?: string }[];
  gender?: 'male' | 'female' | 'other' | 'unknown';
  birthDate?: string;
  address?: { line?: string[]; city?: string; state?: string; postalCode?: string; country?: string }[];
}

export interface Encounter extends ResourceBase {
  resourceType: 'Encounter';
  status: string;
  class: Coding;
  type?: CodeableConcept[];
  subject?: Reference;
  participant?: { individual?: Reference }[];
  period?: Period;
  reasonCode?: CodeableConcept[];
  location?: { location: Reference }[];
}

export interface Observation extends ResourceBase {
  resourceType: 'Observation';
  status: string;
  code: CodeableConcept;
  subject?: Reference;
  encounter?: Reference;
  effectiveDateTime?: string;
  valueQuantity?: Quantity;
  valueString?: string;
  note?: Annotation[];
  referenceRange?: { low?: Quantity; high?: Quantity; text?: string }[];
}

export interface Condition extends ResourceBase {
  resourceType: 'Condition';
  clinicalStatus?: CodeableConcept;
  verificationStatus?: CodeableConcept;
  code?: CodeableConcept;
  subject: Reference;
  encounter?: Reference;
  onsetDateTime?: string;
  abatementDateTime?: string;
  recorder?: Reference;
  note?: Annotation[];
}

export interface Procedure extends ResourceBase {
  resourceType: 'Procedure';
  status: string;
  code?: CodeableConcept;
  subject: Reference;
  encounter?: Reference;
  performedDateTime?: string;
  recorder?: Reference;
  note?: Annotation[];
}

export interface MedicationStatement extends ResourceBase {
  resourceType: 'MedicationStatement';
  status: string;
  medicationCodeableConcept?: CodeableConcept;
  subject: Reference;
  effectivePeriod?: Period;
  note?: Annotation[];
  dosage?: { text?: string; route?: CodeableConcept; doseAndRate?: { doseQuantity?: Quantity }[] }[];
}

export interface CarePlan extends ResourceBase {
  resourceType: 'CarePlan';
  status: string;
  intent: string;
  title?: string;
  description?: string;
  subject: Reference;
  period?: Period;
  author?: Reference;
  goal?: Reference[];
}

export interface DocumentReference extends ResourceBase {
  resourceType: 'DocumentReference';
  status: string;
  type?: CodeableConcept;
  category?: CodeableConcept[];
  subject?: Reference;
  date?: string;
  author?: Reference[];
  description?: string;
  content: { attachment: Attachment }[];
  context?: { encounter?: Reference[] };
}

export type Resource =
  | Patient
  | Encounter
  | Observation
  | Condition
  | Procedure
  | MedicationStatement
  | CarePlan
  | DocumentReference;

export interface BundleEntry {
  fullUrl?: string;
  resource?: Resource;
}

export interface Bundle {
  resourceType: 'Bundle';
  id?: string;
  type: 'collection' | 'transaction' | 'batch' | 'document';
  timestamp?: string;
  entry?: BundleEntry[];
}
