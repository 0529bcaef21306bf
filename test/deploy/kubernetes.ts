// Reading Kubernetes manifests and the Helm chart in tests: the few object shapes the checks touch,
// deploy/ as on disk or as `kubectl kustomize` renders it, the chart rendered with values by
// helm-template.ts (Helm itself is not installed here), Kubernetes' $(VAR) expansion and env in
// containers, and Secret volumes written out as files the node can read.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { type HelmRoot, Templates } from "./helm-template.js";
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
  httpGet?: { path: string; port: string | number; scheme?: "HTTP" | "HTTPS" };
  exec?: { command: string[] };
  timeoutSeconds?: number;
}

interface SecretProjection {
  name: string;
  items?: { key: string; path: string }[];
  optional?: boolean;
}

export interface Volume {
  name: string;
  secret?: { secretName: string; items?: { key: string; path: string }[]; defaultMode?: number; optional?: boolean };
  projected?: { defaultMode?: number; sources: { secret?: SecretProjection }[] };
}

export interface SecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  fsGroup?: number;
  readOnlyRootFilesystem?: boolean;
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
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; subPath?: string }[];
  securityContext?: SecurityContext;
}

export interface PodSpec {
  terminationGracePeriodSeconds?: number;
  securityContext?: SecurityContext;
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
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
    spec: PodSpec;
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

/** The value at `.Values.a.b`, or undefined when values.yaml has no such key. */
export function valueAt(values: unknown, dottedPath: string): unknown {
  let current: unknown = values;
  for (const key of dottedPath.split(".")) {
    if (!isObject(current) || !(key in current)) return undefined;
    current = current[key];
  }
  return current;
}

/** `base` with `overrides` merged in, as `helm install -f overrides.yaml` merges them (maps deeply, the rest replaced). */
export function mergeValues(base: unknown, overrides: unknown): unknown {
  if (!isObject(base) || !isObject(overrides)) return structuredClone(overrides);
  const merged: Record<string, unknown> = structuredClone(base);
  for (const [key, value] of Object.entries(overrides)) merged[key] = key in merged ? mergeValues(merged[key], value) : structuredClone(value);
  return merged;
}

export const chartValues = (): Record<string, unknown> => parseYaml(readRepoFile("helm/raftlock/values.yaml")) as Record<string, unknown>;

/**
 * The manifests `helm template <release> helm/raftlock -n <namespace>` would print with values.yaml's
 * defaults merged with `overrides` (NOTES.txt aside). A `fail` in a template throws its TemplateFailure.
 */
export function renderChart(overrides: unknown, release = { name: "locks", namespace: "prod" }): Manifest[] {
  const chart = parseYaml(readRepoFile("helm/raftlock/Chart.yaml")) as { name: string; version: string; appVersion: string };
  const files = chartTemplateFiles();
  const templates = new Templates(files);
  const root: HelmRoot = {
    Values: mergeValues(chartValues(), overrides),
    Release: { Name: release.name, Namespace: release.namespace, Service: "Helm" },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion },
  };
  return files
    .filter(({ file }) => !path.basename(file).startsWith("_") && file.endsWith(".yaml"))
    .flatMap(({ file }) => parseManifests(templates.render(file, root), file));
}

/** The raftlock container of a rendered StatefulSet, wherever it runs (containers, or initContainers as a native sidecar). */
export function raftlockContainer(pod: PodSpec): Container {
  const container = [...pod.containers, ...(pod.initContainers ?? [])].find((candidate) => candidate.name === "raftlock");
  if (container === undefined) throw new Error("no container named raftlock");
  return container;
}

/** Secrets as the cluster holds them: name, then key, then the (decoded) value. */
export type ClusterSecrets = Readonly<Record<string, Readonly<Record<string, string>>>>;

/** The Secrets among `manifests`, decoded, for `mountSecretVolumes`. */
export function secretsOf(manifests: readonly Manifest[]): Record<string, Record<string, string>> {
  const secrets: Record<string, Record<string, string>> = {};
  for (const manifest of manifests.filter((candidate) => candidate.kind === "Secret")) {
    const data = (manifest as unknown as { data?: Record<string, string> }).data ?? {};
    secrets[manifest.metadata.name] = Object.fromEntries(Object.entries(data).map(([key, value]) => [key, Buffer.from(value, "base64").toString("utf8")]));
  }
  return secrets;
}

/** A container's Secret-backed mount: where it is, and which file names it holds with which content. */
export interface SecretMount {
  readonly mountPath: string;
  readonly readOnly: boolean;
  readonly defaultMode: number | undefined;
  readonly files: ReadonlyMap<string, string>;
}

/**
 * What the kubelet mounts for `container` from Secret and projected-Secret volumes, given the cluster's
 * `secrets`: a missing Secret or key throws unless the volume (or source) is optional, as the pod would
 * then not start.
 */
export function secretMounts(pod: PodSpec, container: Container, secrets: ClusterSecrets): SecretMount[] {
  const mounts: SecretMount[] = [];
  for (const mount of container.volumeMounts ?? []) {
    const volume = (pod.volumes ?? []).find((candidate) => candidate.name === mount.name);
    if (volume === undefined) continue; // a claim of the StatefulSet's volumeClaimTemplates
    const sources = volume.secret !== undefined ? [{ ...volume.secret, name: volume.secret.secretName }] : (volume.projected?.sources ?? []).flatMap((source) => (source.secret === undefined ? [] : [source.secret]));
    if (sources.length === 0) continue;
    if (mount.subPath !== undefined) throw new Error(`${mount.name} is mounted with subPath: the kubelet never updates such a mount when its Secret changes`);
    const files = new Map<string, string>();
    for (const source of sources) {
      const secret = secrets[source.name];
      if (secret === undefined) {
        if (source.optional === true) continue;
        throw new Error(`volume ${mount.name}: Secret ${source.name} does not exist, so the pod cannot start`);
      }
      const items = source.items ?? Object.keys(secret).map((key) => ({ key, path: key }));
      for (const item of items) {
        const value = secret[item.key];
        if (value === undefined) {
          if (source.optional === true) continue;
          throw new Error(`volume ${mount.name}: Secret ${source.name} has no key ${item.key}, so the pod cannot start`);
        }
        files.set(item.path, value);
      }
    }
    const defaultMode = volume.secret?.defaultMode ?? volume.projected?.defaultMode;
    mounts.push({ mountPath: mount.mountPath, readOnly: mount.readOnly === true, defaultMode, files });
  }
  return mounts;
}

/**
 * Writes `mounts` under the directory `root` (each at root + mountPath) and returns how a path inside the
 * container maps to the file written: what the node would read at that path.
 */
export function writeMounts(mounts: readonly SecretMount[], root: string): (containerPath: string) => string {
  for (const mount of mounts) {
    for (const [name, content] of mount.files) {
      const file = path.join(root, mount.mountPath, name);
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, content);
    }
  }
  return (containerPath) => (mounts.some((mount) => containerPath.startsWith(`${mount.mountPath}/`)) ? path.join(root, containerPath) : containerPath);
}

/** `args` with the value of every `--flag=/path` under a mount replaced by `hostPath(/path)`. */
export function argsOnHost(args: readonly string[], hostPath: (containerPath: string) => string): string[] {
  return args.map((arg) => {
    const match = /^(--[a-z0-9-]+=)(\/.*)$/.exec(arg);
    return match === null ? arg : `${match[1]}${hostPath(match[2]!)}`;
  });
}
