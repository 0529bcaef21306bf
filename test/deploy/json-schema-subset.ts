// The part of JSON Schema (draft-07) that helm/raftlock/values.schema.json uses, checked the way Helm
// checks values: enough to test the chart's defaults without a validator dependency. A schema that uses
// any other keyword is refused, so that nothing in it is silently ignored here.

export interface Schema {
  readonly $schema?: string;
  readonly title?: string;
  readonly description?: string;
  readonly type?: SchemaType | readonly SchemaType[];
  readonly properties?: Readonly<Record<string, Schema>>;
  readonly required?: readonly string[];
  readonly additionalProperties?: boolean | Schema;
  readonly items?: Schema;
  readonly enum?: readonly unknown[];
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minLength?: number;
  readonly pattern?: string;
}

type SchemaType = "object" | "array" | "string" | "integer" | "number" | "boolean" | "null";

export const supportedKeywords: ReadonlySet<string> = new Set([
  "$schema", "title", "description", "type", "properties", "required", "additionalProperties", "items", "enum", "minimum", "maximum", "minLength", "pattern",
]);

/** Keywords of `schema` (and its subschemas) that this checker does not implement, with their paths. */
export function unsupportedKeywords(schema: Schema, at = "#"): string[] {
  const found = Object.keys(schema).filter((key) => !supportedKeywords.has(key)).map((key) => `${at}/${key}`);
  for (const [name, sub] of Object.entries(schema.properties ?? {})) found.push(...unsupportedKeywords(sub, `${at}/properties/${name}`));
  if (typeof schema.additionalProperties === "object") found.push(...unsupportedKeywords(schema.additionalProperties, `${at}/additionalProperties`));
  if (schema.items !== undefined) found.push(...unsupportedKeywords(schema.items, `${at}/items`));
  return found;
}

/** Why `value` does not match `schema`, one line per problem; empty when it matches. */
export function validate(schema: Schema, value: unknown, at = "values"): string[] {
  const problems: string[] = [];
  if (schema.type !== undefined) {
    const types = typeof schema.type === "string" ? [schema.type] : schema.type;
    if (!types.some((type) => hasType(value, type))) return [`${at}: expected ${types.join(" or ")}, got ${JSON.stringify(value)}`];
  }
  if (schema.enum !== undefined && !schema.enum.some((allowed) => allowed === value)) {
    problems.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  }
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) problems.push(`${at}: ${value} is below the minimum ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) problems.push(`${at}: ${value} is above the maximum ${schema.maximum}`);
  }
  if (typeof value === "string") {
    if (schema.minLength !== undefined && value.length < schema.minLength) problems.push(`${at}: shorter than ${schema.minLength}`);
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, "u").test(value)) problems.push(`${at}: "${value}" does not match ${schema.pattern}`);
  }
  if (Array.isArray(value) && schema.items !== undefined) {
    value.forEach((item, index) => problems.push(...validate(schema.items!, item, `${at}[${index}]`)));
  }
  if (isObject(value)) {
    for (const name of schema.required ?? []) if (!(name in value)) problems.push(`${at}.${name}: required`);
    for (const [name, item] of Object.entries(value)) {
      const property = schema.properties?.[name];
      if (property !== undefined) problems.push(...validate(property, item, `${at}.${name}`));
      else if (schema.additionalProperties === false) problems.push(`${at}.${name}: not allowed (no such value)`);
      else if (typeof schema.additionalProperties === "object") problems.push(...validate(schema.additionalProperties, item, `${at}.${name}`));
    }
  }
  return problems;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function hasType(value: unknown, type: SchemaType): boolean {
  switch (type) {
    case "object":
      return isObject(value);
    case "array":
      return Array.isArray(value);
    case "integer":
      return Number.isInteger(value);
    case "number":
      return typeof value === "number";
    case "null":
      return value === null;
    default:
      return typeof value === type;
  }
}
