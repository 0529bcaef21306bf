// Reading Kubernetes manifests and Helm templates in tests: the few object shapes the checks touch,
// Kubernetes' $(VAR) expansion in container args, and a substitution of the chart's simple template
// expressions (Helm itself is not installed here).
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { isObject } from "./json-schema-subset.js";

export const repoRoot = new URL("../..", import.meta.url).pathname;

export function readRepoFile(relativePath: string): string {
  return readFileSync(path.join(repoRoot, relativePath), "utf8");
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string; optional?: boolean } };
}

export interface Probe {
  httpGet?: { path: string; port: string | number };
}

export interface Container {
  name: string;
  image?: string;
  args?: string[];
  env?: EnvVar[];
  ports?: { name?: string; containerPort: number }[];
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  lifecycle?: unknown;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  volumeMounts?: { name: string; mountPath: string }[];
}

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
}

export interface StatefulSetSpec {
  serviceName: string;
  replicas: number;
  podManagementPolicy?: string;
  selector: { matchLabels: Record<string, string> };
  template: {
    metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
    spec: { terminationGracePeriodSeconds?: number; containers: Container[]; initContainers?: Container[] };
  };
  volumeClaimTemplates?: { metadata: { name: string } }[];
}

export interface ServiceSpec {
  clusterIP?: string;
  publishNotReadyAddresses?: boolean;
  selector: Record<string, string>;
  ports: { name: string; port: number; targetPort: string | number }[];
}

/** Every document of a multi-document YAML text; a syntax error fails with the source named. */
export function parseManifests(text: string, source: string): Manifest[] {
  const manifests: Manifest[] = [];
  for (const document of parseAllDocuments(text)) {
    if (document.errors.length > 0) throw new Error(`${source}: ${document.errors.map((error) => error.message).join("; ")}`);
    const value: unknown = document.toJS();
    if (value === null || value === undefined) continue;
    if (!isObject(value) || typeof value.kind !== "string" || !isObject(value.metadata)) throw new Error(`${source}: a document without kind and metadata`);
    manifests.push(value as unknown as Manifest);
  }
  return manifests;
}

/** The files deploy/kustomization.yaml lists as resources, parsed as they are on disk. */
export function deployFiles(): Manifest[] {
  const kustomization = parseYaml(readRepoFile("deploy/kustomization.yaml")) as { resources: string[] };
  return kustomization.resources.flatMap((file) => parseManifests(readRepoFile(path.join("deploy", file)), `deploy/${file}`));
}

export function hasKubectl(): boolean {
  return spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" }).status === 0;
}

/** `kubectl kustomize deploy/`, parsed. */
export function renderDeploy(): Manifest[] {
  const result = spawnSync("kubectl", ["kustomize", path.join(repoRoot, "deploy")], { encoding: "utf8", timeout: 60_000 });
  if (result.status !== 0) throw new Error(`kubectl kustomize deploy/ failed: ${result.stderr}`);
  return parseManifests(result.stdout, "kubectl kustomize deploy/");
}

export function only<T extends Manifest>(manifests: readonly Manifest[], kind: string): T {
  const found = manifests.filter((manifest) => manifest.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0] as T;
}

/**
 * Kubernetes' expansion of `$(NAME)` in command and args: a variable defined in the container's env
 * is replaced, `$$` is a literal `$`, anything else stays as written.
 */
export function expandKubernetesVariables(text: string, env: Readonly<Record<string, string>>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (match, name: string | undefined) => {
    if (name === undefined) return "$";
    return env[name] ?? match;
  });
}

/**
 * A container's environment as the kubelet would give it to a pod: downward-API fields from `pod`,
 * secret keys from `secrets` (optional keys missing there are left out).
 */
export function containerEnvironment(
  container: Container,
  pod: { name: string; namespace: string },
  secrets: Readonly<Record<string, string>>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const variable of container.env ?? []) {
    const fieldPath = variable.valueFrom?.fieldRef?.fieldPath;
    const secret = variable.valueFrom?.secretKeyRef;
    if (variable.value !== undefined) env[variable.name] = expandKubernetesVariables(variable.value, env);
    else if (fieldPath === "metadata.name") env[variable.name] = pod.name;
    else if (fieldPath === "metadata.namespace") env[variable.name] = pod.namespace;
    else if (secret !== undefined) {
      const value = secrets[secret.key];
      if (value !== undefined) env[variable.name] = value;
      else if (secret.optional !== true) throw new Error(`${variable.name}: secret key ${secret.key} is not optional`);
    } else throw new Error(`${variable.name}: a kind of env source these tests do not know`);
  }
  return env;
}

export function chartTemplateFiles(): { file: string; text: string }[] {
  const directory = "helm/raftlock/templates";
  return readdirSync(path.join(repoRoot, directory))
    .sort()
    .map((file) => ({ file: `${directory}/${file}`, text: readRepoFile(`${directory}/${file}`) }));
}

export interface TemplateContext {
  readonly values: unknown;
  readonly releaseName: string;
  readonly namespace: string;
  /** What `include "<name>" .` gives. */
  readonly includes: Readonly<Record<string, string>>;
}

/** The value at `.Values.a.b`, or undefined when values.yaml has no such key. */
export function valueAt(values: unknown, dottedPath: string): unknown {
  let current: unknown = values;
  for (const key of dottedPath.split(".")) {
    if (!isObject(current) || !(key in current)) return undefined;
    current = current[key];
  }
  return current;
}

/**
 * Substitutes `{{ ... }}` expressions of the simple kind the chart's container args use: a value, the
 * release's namespace, an include, piped through int64 or quote. Anything else throws, so that a line
 * this cannot read fails the test instead of passing unread.
 */
export function substituteTemplate(line: string, context: TemplateContext): string {
  return line.replace(/\{\{-?\s*(.*?)\s*-?\}\}/g, (_match, expression: string) => {
    const [head, ...pipes] = expression.split("|").map((part) => part.trim());
    let value: unknown;
    const include = /^include "([^"]+)" \.$/.exec(head!);
    if (head!.startsWith(".Values.")) value = valueAt(context.values, head!.slice(".Values.".length));
    else if (head === ".Release.Namespace") value = context.namespace;
    else if (head === ".Release.Name") value = context.releaseName;
    else if (include !== null) value = context.includes[include[1]!];
    if (value === undefined || value === null || typeof value === "object") throw new Error(`cannot substitute {{ ${expression} }} in: ${line.trim()}`);
    for (const pipe of pipes) {
      if (pipe === "int64") value = String(Math.trunc(Number(value)));
      else if (pipe === "quote") value = JSON.stringify(String(value));
      else throw new Error(`unsupported template function ${pipe} in: ${line.trim()}`);
    }
    return String(value);
  });
}

/**
 * The raftlock container's args in the chart, with the values given: the `- ...` lines of its args
 * block, taking every `if` branch and skipping `range` bodies (extraArgs, empty by default).
 */
export function chartRaftlockArgs(helpers: string, context: TemplateContext): string[] {
  const block = /\nargs:\n([\s\S]*?)\nenv:\n/.exec(helpers);
  if (block === null) throw new Error("the raftlock container template has no args: block followed by env:");
  const args: string[] = [];
  const open: string[] = [];
  for (const line of block[1]!.split("\n")) {
    const control = /^\s*\{\{-?\s*(if|range|with|end|else)\b/.exec(line);
    if (control !== null) {
      if (control[1] === "end") open.pop();
      else if (control[1] !== "else") open.push(control[1]!);
      continue;
    }
    if (open.includes("range")) continue;
    const item = /^\s*- (.*)$/.exec(line);
    if (item === null) throw new Error(`unexpected line in the args block: ${line}`);
    args.push(String(parseYaml(substituteTemplate(item[1]!, context))));
  }
  return args;
}
