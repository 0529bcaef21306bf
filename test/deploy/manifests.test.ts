// deploy/ (kustomize base) and helm/raftlock/ against the node's real flags, so that the manifests, the
// chart and `raftlock start` cannot drift apart. deploy/ is checked as its files are and, when kubectl is
// installed, as `kubectl kustomize` renders it. Helm is not installed here: the chart is rendered by a
// small reader of the Go template language it uses (helm-template.ts), with values.yaml's defaults and
// overrides. Secret volumes are "mounted" by writing their files to a scratch directory, so that the
// node's own config parser reads the -file flags and TLS files as it would in the pod.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { clientUsage } from "../../src/cli-admin.js";
import { envName, parseStartConfig, startFlags } from "../../src/config.js";
import { TestCa, type CertFiles } from "../support/certs.js";
import { TemplateFailure } from "./helm-template.js";
import { isObject, unsupportedKeywords, validate, type Schema } from "./json-schema-subset.js";
import {
  argsOnHost,
  chartTemplateFiles,
  chartValues,
  containerEnvironment,
  deployFiles,
  expandKubernetesVariables,
  hasKubectl,
  mergeValues,
  only,
  raftlockContainer,
  readRepoFile,
  renderChart,
  renderDeploy,
  secretMounts,
  secretsOf,
  valueAt,
  writeMounts,
  type ClusterSecrets,
  type Container,
  type Manifest,
  type PodSpec,
  type ServiceSpec,
  type StatefulSetSpec,
} from "./kubernetes.js";

const flagNames = new Set(startFlags.map((flag) => flag.name));
/** RAFTLOCK_* variables that are not `start` flags: the admin CLI's target and its TLS files (cli-admin.ts). */
const clientEnvNames = new Set(["http", "tls-ca", "tls-cert", "tls-key"].map((option) => envName(option)));
const realEnvNames = new Set([...startFlags.map((flag) => envName(flag.name)), ...clientEnvNames]);
/** The flags that take a secret in the clear; manifests pass their -file form instead. */
const secretFlags = ["cluster-token", "auth-password", "auth-readonly-password"];

/** The flag name of each `--flag` or `--flag=value` argument. */
function flagsOf(args: readonly string[]): string[] {
  return args.filter((arg) => arg.startsWith("--")).map((arg) => arg.slice(2).split("=")[0]!);
}

/** The value of `--name=value` or `--name value` in args. */
function flagValue(args: readonly string[], name: string): string | undefined {
  for (let index = 0; index < args.length; index++) {
    if (args[index] === `--${name}`) return args[index + 1];
    if (args[index]!.startsWith(`--${name}=`)) return args[index]!.slice(name.length + 3);
  }
  return undefined;
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}

/** Directories standing for containers' filesystems in the kubelet simulation; removed at the end. */
const scratchDirectories: string[] = [];
function scratchDirectory(): string {
  const directory = mkdtempSync(path.join(tmpdir(), "raftlock-deploy-"));
  scratchDirectories.push(directory);
  return directory;
}
afterAll(() => {
  for (const directory of scratchDirectories) rmSync(directory, { recursive: true, force: true });
});

/**
 * The config the node would build in pod `podName` of namespace "prod": its env as the kubelet gives it,
 * its Secret volumes (from `secrets`) written where it would read them.
 */
function nodeConfigIn(pod: PodSpec, container: Container, podName: string, secrets: ClusterSecrets) {
  const env = containerEnvironment(container, { name: podName, namespace: "prod" }, {});
  const hostPath = writeMounts(secretMounts(pod, container, secrets), scratchDirectory());
  return parseStartConfig(argsOnHost((container.args ?? []).slice(1).map((arg) => expandKubernetesVariables(arg, env)), hostPath), env);
}

/**
 * Secrets reach the node as files: no secret flag or variable in the clear, and every file flag names a
 * file of a read-only Secret volume of mode 0400, which the pod's fsGroup lets the node's user read.
 */
function expectSecretsAsFiles(pod: PodSpec, container: Container, secrets: ClusterSecrets): void {
  const args = container.args ?? [];
  const envNames = (container.env ?? []).map((variable) => variable.name);
  for (const flag of secretFlags) {
    expect(flagValue(args, flag), `--${flag}`).toBeUndefined();
    expect(envNames).not.toContain(envName(flag));
  }
  const mounts = secretMounts(pod, container, secrets);
  const fileFlags = flagsOf(args).filter((flag) => flag.endsWith("-file") || /-tls-(cert|key|ca)$/.test(flag));
  expect(fileFlags).toContain("cluster-token-file");
  for (const flag of fileFlags) {
    const file = flagValue(args, flag)!;
    const mount = mounts.find((candidate) => file.startsWith(`${candidate.mountPath}/`));
    expect(mount, `--${flag}=${file}: a file of a mounted Secret`).toBeDefined();
    expect([...mount!.files.keys()], `--${flag}=${file}`).toContain(file.slice(mount!.mountPath.length + 1));
    expect(mount!.readOnly, `${mount!.mountPath} is read-only`).toBe(true);
    // Owner-only: the kubelet then adds group read for the pod's fsGroup, and nothing for others.
    expect((mount!.defaultMode ?? 0o644) & 0o077, `${mount!.mountPath}'s defaultMode`).toBe(0);
  }
  // The files belong to root: user 1000 reads them only as a member of the fsGroup the kubelet gives them.
  expect(container.securityContext?.runAsUser).toBeGreaterThan(0);
  expect(pod.securityContext?.fsGroup, "the pod's fsGroup, which makes 0400 Secret files 0440 for its group").toBeDefined();
  expect(pod.securityContext?.fsGroup).toBe(container.securityContext?.runAsGroup);
}

const hostingKubectl = hasKubectl();
if (!hostingKubectl) console.warn("kubectl is not installed: deploy/ is checked as its files are, not as `kubectl kustomize` renders it");

const deploySources: { name: string; manifests: () => Manifest[] }[] = [
  { name: "deploy/ files", manifests: deployFiles },
  ...(hostingKubectl ? [{ name: "kubectl kustomize deploy/", manifests: renderDeploy }] : []),
];

describe.each(deploySources)("$name", ({ name, manifests: load }) => {
  const manifests = load();
  const statefulSet = only(manifests, "StatefulSet");
  const sts = statefulSet.spec as unknown as StatefulSetSpec;
  const pod = sts.template.spec;
  const raftlock = raftlockContainer(pod);
  const args = raftlock.args ?? [];
  const initialMembers = Number(flagValue(args, "replicas"));
  const portNamed = (portName: string | number): number =>
    typeof portName === "number" ? portName : raftlock.ports!.find((port) => port.name === portName)!.containerPort;
  /** The Secret kustomization.yaml tells users to create. */
  const secrets = { "example-app-raftlock": { "cluster-token": "test-cluster-token\n", "auth-password": "test-password\n" } };
  /** The config the node would build in pod `<sts>-<ordinal>` of namespace "prod". */
  const configOf = (ordinal: number) => nodeConfigIn(pod, raftlock, `${statefulSet.metadata.name}-${ordinal}`, secrets);

  it("holds a StatefulSet with a raftlock container, its headless Service and a PodDisruptionBudget", () => {
    expect(manifests.map((manifest) => manifest.kind).sort()).toEqual(["PodDisruptionBudget", "Service", "StatefulSet"]);
    expect(raftlock).toBeDefined();
    expect(pod.containers.length).toBeGreaterThanOrEqual(2); // the sidecar shape: an app beside raftlock
    expect(args[0]).toBe("start");
  });

  it("passes raftlock only real `raftlock start` flags, and only real RAFTLOCK_* variables", () => {
    for (const flag of flagsOf(args)) expect(flagNames, `--${flag} in ${name}`).toContain(flag);
    for (const variable of raftlock.env ?? []) {
      if (variable.name.startsWith("RAFTLOCK_")) expect(realEnvNames, `${variable.name} in ${name}`).toContain(variable.name);
    }
    expect(flagValue(args, "peers")).toMatch(/^dns:/);
    expect(flagValue(args, "id")).toBe("$(POD_NAME)");
    const podName = raftlock.env!.find((variable) => variable.name === "POD_NAME");
    expect(podName?.valueFrom?.fieldRef?.fieldPath).toBe("metadata.name");
  });

  it("reads the cluster token and password from files of a read-only 0400 Secret volume, never from env or a literal", () => {
    expectSecretsAsFiles(pod, raftlock, secrets);
    expect(flagsOf(args)).toContain("auth-password-file");
    expect(manifests.some((manifest) => manifest.kind === "Secret")).toBe(false);
    // The example app is a client: it keeps the password in its environment, where redis-cli reads it.
    const app = pod.containers.find((container) => container.name !== "raftlock")!;
    expect(app.env?.find((variable) => variable.name === "REDISCLI_AUTH")?.valueFrom?.secretKeyRef).toEqual({ name: "example-app-raftlock", key: "auth-password" });
    expect(containerEnvironment(app, { name: "example-app-0", namespace: "prod" }, secrets["example-app-raftlock"]).REDISCLI_AUTH).toBe("test-password\n");
  });

  it("declares the --*-listen ports as container ports, and the headless Service names them", () => {
    for (const [flag, portName] of [["peer-listen", "peer"], ["http-listen", "http"], ["resp-listen", "resp"]] as const) {
      const listen = flagValue(args, flag);
      expect(listen, `--${flag}`).toBeDefined();
      expect(portNamed(portName), `containerPort ${portName}`).toBe(portOf(listen!));
    }
    expect(portOf(flagValue(args, "peers")!)).toBe(portNamed("peer"));
    const service = only(manifests, "Service");
    for (const port of (service.spec as unknown as ServiceSpec).ports) expect(portNamed(port.targetPort), port.name).toBe(port.port);
  });

  it("probes liveness on /healthz and readiness on /readyz, on the HTTP port, and has no preStop", () => {
    const httpPort = portOf(flagValue(args, "http-listen")!);
    expect(raftlock.livenessProbe?.httpGet?.path).toBe("/healthz");
    expect(raftlock.startupProbe?.httpGet?.path).toBe("/healthz");
    expect(raftlock.readinessProbe?.httpGet?.path).toBe("/readyz");
    for (const probe of [raftlock.livenessProbe, raftlock.startupProbe, raftlock.readinessProbe]) {
      expect(portNamed(probe!.httpGet!.port)).toBe(httpPort);
      expect(probe!.httpGet!.scheme ?? "HTTP").toBe(flagValue(args, "client-tls-cert") === undefined ? "HTTP" : "HTTPS");
    }
    // SIGTERM already hands leadership over; a preStop would only delay it.
    expect(raftlock.lifecycle).toBeUndefined();
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(15);
    const annotations = sts.template.metadata.annotations ?? {};
    expect(annotations["prometheus.io/scrape"]).toBe("true");
    expect(Number(annotations["prometheus.io/port"])).toBe(httpPort);
    expect(annotations["prometheus.io/path"]).toBe("/metrics");
    expect(annotations["prometheus.io/scheme"]).toBe("http");
  });

  it("governs the pods with a headless Service that publishes pods before they are ready, named in --peers", () => {
    const service = only(manifests, "Service");
    const spec = service.spec as unknown as ServiceSpec;
    expect(sts.serviceName).toBe(service.metadata.name);
    expect(spec.clusterIP).toBe("None");
    expect(spec.publishNotReadyAddresses).toBe(true);
    expect(sts.template.metadata.labels).toMatchObject(spec.selector);
    expect(flagValue(args, "peers")!.startsWith(`dns:${service.metadata.name}.$(POD_NAMESPACE).svc.`)).toBe(true);
    // OrderedReady would wait for ordinal 0 to be ready, which needs a leader, which needs a quorum of pods.
    expect(sts.podManagementPolicy).toBe("Parallel");
  });

  it("keeps a quorum through voluntary disruptions", () => {
    const budget = only(manifests, "PodDisruptionBudget");
    const spec = budget.spec as { maxUnavailable: number; selector: { matchLabels: Record<string, string> } };
    expect(sts.template.metadata.labels).toMatchObject(spec.selector.matchLabels);
    expect(spec.maxUnavailable).toBeGreaterThanOrEqual(1);
    expect(spec.maxUnavailable).toBeLessThanOrEqual(Math.floor((initialMembers - 1) / 2));
  });

  it("keeps the data directory on a claim of each pod, and requests resources for every container", () => {
    const dataDir = flagValue(args, "data-dir");
    const mount = raftlock.volumeMounts?.find((volumeMount) => volumeMount.mountPath === dataDir);
    expect(mount, `a volume mounted at --data-dir ${dataDir}`).toBeDefined();
    expect(sts.volumeClaimTemplates?.map((claim) => claim.metadata.name)).toContain(mount!.name);
    for (const container of pod.containers) expect(container.resources?.requests, container.name).toBeDefined();
    expect(initialMembers).toBeLessThanOrEqual(sts.replicas);
  });

  it("starts a node the cluster bootstraps from in an ordinal below --replicas", () => {
    const config = configOf(0);
    const service = only(manifests, "Service").metadata.name;
    const names = Array.from({ length: initialMembers }, (_, ordinal) => `${statefulSet.metadata.name}-${ordinal}`);
    expect(config.id).toBe(names[0]);
    expect([...config.peers.keys()]).toEqual(names);
    expect(config.join).toEqual([]);
    expect(config.peerAdvertise).toEqual({ host: `${names[0]}.${service}.prod.svc.cluster.local`, port: portNamed("peer") });
    // One trailing newline of each file dropped, as `kubectl create secret --from-file` often leaves one.
    expect(config.clusterToken).toBe("test-cluster-token");
    expect(config.authPassword).toBe("test-password");
    expect(config.dataDir).toBe("/data");
  });

  it("starts a node that joins through the first ordinals' HTTP port in an ordinal at or above --replicas", () => {
    const config = configOf(initialMembers);
    const service = only(manifests, "Service").metadata.name;
    expect(config.peers.size).toBe(0);
    expect(config.join).toEqual(
      Array.from({ length: initialMembers }, (_, ordinal) => `http://${statefulSet.metadata.name}-${ordinal}.${service}.prod.svc.cluster.local:${portNamed("http")}`),
    );
  });

  it.runIf(name.startsWith("kubectl"))("points the raftlock container at the image set in kustomization.yaml", () => {
    expect(raftlock.image).not.toBe("raftlock");
    expect(raftlock.image).toMatch(/\/raftlock:/);
  });
});

describe("helm/raftlock", () => {
  const values = chartValues();
  const schema = JSON.parse(readRepoFile("helm/raftlock/values.schema.json")) as Schema;
  const templates = chartTemplateFiles();
  const helpers = templates.find((template) => template.file.endsWith("/_helpers.tpl"))!.text;
  const chart = parseYaml(readRepoFile("helm/raftlock/Chart.yaml")) as { name: string; version: string; appVersion: string };
  /** Every `.Values.a.b` the templates read. */
  const references = new Set(templates.flatMap(({ text }) => [...text.matchAll(/\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)].map((match) => match[1]!.slice(1))));
  /** The chart rendered as release "locks" in "prod", with `overrides` on top of a cluster token (required, no default). */
  const render = (overrides: unknown = {}): Manifest[] => renderChart(mergeValues({ auth: { clusterToken: { value: "test-cluster-token" } } }, overrides));
  const podOf = (manifests: readonly Manifest[]): PodSpec => (only(manifests, "StatefulSet").spec as unknown as StatefulSetSpec).template.spec;
  const annotationsOf = (manifests: readonly Manifest[]): Record<string, string> => (only(manifests, "StatefulSet").spec as unknown as StatefulSetSpec).template.metadata.annotations ?? {};
  const withValue = (dottedPath: string, value: unknown): unknown => {
    const copy = structuredClone(values);
    const keys = dottedPath.split(".");
    let node = copy as Record<string, unknown>;
    for (const key of keys.slice(0, -1)) node = node[key] as Record<string, unknown>;
    node[keys.at(-1)!] = value;
    return copy;
  };

  /** A CA and a node certificate, as cert-manager would put them in a kubernetes.io/tls Secret; and one of another CA. */
  let tlsSecret: Record<string, string>;
  let strangerSecret: Record<string, string>;
  beforeAll(async () => {
    const directory = scratchDirectory();
    const secretOf = (ca: TestCa, leaf: CertFiles): Record<string, string> => ({
      "tls.crt": readFileSync(leaf.cert, "utf8"),
      "tls.key": readFileSync(leaf.key, "utf8"),
      "ca.crt": readFileSync(ca.cert, "utf8"),
    });
    const ca = await TestCa.create(directory, "cluster-ca");
    tlsSecret = secretOf(ca, await ca.issue("node", "01"));
    const stranger = await TestCa.create(directory, "stranger-ca");
    strangerSecret = secretOf(stranger, await stranger.issue("stranger", "02"));
  }, 60_000);

  /** The chart rendered with `overrides` and Secret `secretName` holding tlsSecret; checks that its Secrets reach the node as files. */
  const renderWithTls = (overrides: unknown, secretName: string) => {
    const manifests = render(overrides);
    const secrets: ClusterSecrets = { ...secretsOf(manifests), [secretName]: tlsSecret };
    const pod = podOf(manifests);
    const raftlock = raftlockContainer(pod);
    expectSecretsAsFiles(pod, raftlock, secrets);
    return { manifests, secrets, pod, raftlock };
  };

  it("describes every value in values.schema.json with the subset of JSON Schema checked here", () => {
    expect(schema.$schema).toBe("http://json-schema.org/draft-07/schema#");
    expect(unsupportedKeywords(schema)).toEqual([]);
    const undescribed: string[] = [];
    const walk = (node: Schema, at: string): void => {
      for (const [key, sub] of Object.entries(node.properties ?? {})) {
        if (sub.description === undefined) undescribed.push(`${at}${key}`);
        walk(sub, `${at}${key}.`);
      }
    };
    walk(schema, "");
    expect(undescribed).toEqual([]);
  });

  it("has default values that match values.schema.json", () => {
    expect(validate(schema, values)).toEqual([]);
  });

  it("rejects wrong values through the schema (so the check above can fail)", () => {
    expect(validate(schema, withValue("replicas", 0))).toEqual(["values.replicas: 0 is below the minimum 1"]);
    expect(validate(schema, withValue("cluster.initialMembers", "3"))).toHaveLength(1);
    expect(validate(schema, withValue("ports.http", 70_000))).toHaveLength(1);
    expect(validate(schema, withValue("raft.readMode", "fast"))).toHaveLength(1);
    expect(validate(schema, withValue("terminationGracePeriodSeconds", 5))).toHaveLength(1);
    expect(validate(schema, withValue("persistence.size", "lots"))).toHaveLength(1);
    expect(validate(schema, withValue("extraArgs", ["--log-level"]))).toHaveLength(1);
    expect(validate(schema, { ...values, replica: 3 })).toEqual(["values.replica: not allowed (no such value)"]);
  });

  it("accepts the read-only password and TLS values, and rejects wrong ones", () => {
    const tlsOn = mergeValues(values, {
      auth: { password: { existingSecret: "locks-auth", key: "password" }, readonlyPassword: { existingSecret: "locks-auth", key: "readonly.password" } },
      tls: { peer: { enabled: true, secretName: "locks-peer-tls" }, client: { enabled: true, secretName: "locks-client-tls", requireClientCertificates: true } },
    });
    expect(validate(schema, tlsOn)).toEqual([]);
    expect(validate(schema, withValue("auth.readonlyPassword.key", "read only"))).toHaveLength(1);
    expect(validate(schema, withValue("auth.readonlyPassword.existingSecret", "Locks_Auth"))).toHaveLength(1);
    expect(validate(schema, withValue("auth.readonlyPassword", { value: "x" }))).toHaveLength(2);
    expect(validate(schema, withValue("tls.peer.enabled", "yes"))).toHaveLength(1);
    expect(validate(schema, withValue("tls.peer.secretName", "Peer TLS"))).toHaveLength(1);
    expect(validate(schema, withValue("tls.client.requireClientCertificates", 1))).toHaveLength(1);
    expect(validate(schema, withValue("tls.client", { enabled: true, secretName: "x", requireClientCertificates: false, verify: true }))).toEqual(["values.tls.client.verify: not allowed (no such value)"]);
  });

  it("reads only values that values.yaml defines, and every value is read by a template", () => {
    for (const reference of references) expect(valueAt(values, reference), `.Values.${reference}`).not.toBeUndefined();
    const unread: string[] = [];
    const walk = (node: unknown, at: string): void => {
      if (at !== "" && [...references].some((reference) => reference === at || at.startsWith(`${reference}.`))) return;
      if (!isObject(node) || Object.keys(node).length === 0) {
        unread.push(at);
        return;
      }
      for (const [key, sub] of Object.entries(node)) walk(sub, at === "" ? key : `${at}.${key}`);
    };
    walk(values, "");
    expect(unread).toEqual([]);
  });

  it("passes raftlock only real `raftlock start` flags and RAFTLOCK_* variables, whatever the values", () => {
    const templateFlags = [...helpers.matchAll(/^\s*- "?--([a-z][a-z0-9-]*)/gm)].map((match) => match[1]!);
    expect(templateFlags.length).toBeGreaterThan(10);
    for (const flag of templateFlags) expect(flagNames, `--${flag}`).toContain(flag);
    const envNames = templates.flatMap(({ text }) => [...text.matchAll(/name: (RAFTLOCK_[A-Z_]+)/g)].map((match) => match[1]!));
    for (const name of envNames) expect(realEnvNames, name).toContain(name);
    const everything = {
      auth: { password: { value: "pw" }, readonlyPassword: { value: "ro" } },
      tls: { peer: { enabled: true, secretName: "p" }, client: { enabled: true, secretName: "c", requireClientCertificates: true } },
      resp: { enabled: false },
    };
    for (const overrides of [{}, everything]) {
      const raftlock = raftlockContainer(podOf(render(overrides)));
      for (const flag of flagsOf(raftlock.args!)) expect(flagNames, `--${flag}`).toContain(flag);
      for (const variable of raftlock.env!) if (variable.name.startsWith("RAFTLOCK_")) expect(realEnvNames, variable.name).toContain(variable.name);
    }
  });

  it("defaults the Raft settings to the node's own defaults", () => {
    const args = raftlockContainer(podOf(render())).args!;
    // Listen addresses excepted: the node defaults to loopback, a pod must listen where the kubelet's probes reach.
    for (const flag of startFlags.filter((spec) => !spec.name.endsWith("-listen"))) {
      const given = flagValue(args, flag.name);
      if (given !== undefined && flag.defaultValue !== undefined) expect(given, `--${flag.name}`).toBe(flag.defaultValue);
    }
  });

  it("renders a StatefulSet the node starts in, in an ordinal that bootstraps and in one that joins", () => {
    const manifests = render();
    expect(manifests.map((manifest) => `${manifest.kind} ${manifest.metadata.name}`).sort()).toEqual([
      "PodDisruptionBudget locks-raftlock",
      "Secret locks-raftlock-token",
      "Service locks-raftlock",
      "Service locks-raftlock-peers",
      "StatefulSet locks-raftlock",
    ]);
    const pod = podOf(manifests);
    const raftlock = raftlockContainer(pod);
    expect(raftlock.args![0]).toBe("start");
    const first = nodeConfigIn(pod, raftlock, "locks-raftlock-0", secretsOf(manifests));
    expect([...first.peers.keys()]).toEqual(["locks-raftlock-0", "locks-raftlock-1", "locks-raftlock-2"]);
    expect(first.peerAdvertise).toEqual({ host: "locks-raftlock-0.locks-raftlock-peers.prod.svc.cluster.local", port: 7001 });
    expect(first.respListen?.port).toBe(6381);
    expect(first.clusterToken).toBe("test-cluster-token");
    expect(first.authPassword).toBeUndefined();
    const joining = nodeConfigIn(pod, raftlock, "locks-raftlock-4", secretsOf(manifests));
    expect(joining.join[0]).toBe("http://locks-raftlock-0.locks-raftlock-peers.prod.svc.cluster.local:8381");
    // Large numbers must reach the node as integers (Helm prints a float64 1000000 as 1e+06).
    expect(flagValue(raftlockContainer(podOf(render({ raft: { snapshotEveryEntries: 1_000_000 } }))).args!, "snapshot-every-entries")).toBe("1000000");
  });

  it("refuses to render without a cluster token", () => {
    expect(() => renderChart({})).toThrow(TemplateFailure);
    expect(() => renderChart({})).toThrow(/a cluster token is required/);
  });

  it("passes the secrets as files of a read-only 0400 volume, from the chart's own Secrets", () => {
    const manifests = render({ auth: { password: { value: "writer-password" }, readonlyPassword: { value: "reader-password" } } });
    const secrets = secretsOf(manifests);
    expect(Object.keys(secrets).sort()).toEqual(["locks-raftlock-password", "locks-raftlock-readonly-password", "locks-raftlock-token"]);
    const pod = podOf(manifests);
    const raftlock = raftlockContainer(pod);
    expectSecretsAsFiles(pod, raftlock, secrets);
    expect(flagsOf(raftlock.args!)).toEqual(expect.arrayContaining(["cluster-token-file", "auth-password-file", "auth-readonly-password-file"]));
    const config = nodeConfigIn(pod, raftlock, "locks-raftlock-0", secrets);
    expect([config.clusterToken, config.authPassword, config.authReadOnlyPassword]).toEqual(["test-cluster-token", "writer-password", "reader-password"]);
  });

  it("passes the secrets as files from existing Secrets, under the keys given", () => {
    const manifests = renderChart({
      auth: {
        clusterToken: { existingSecret: "ops-raftlock", key: "token" },
        password: { existingSecret: "ops-raftlock", key: "rw" },
        readonlyPassword: { existingSecret: "ops-readers", key: "ro" },
      },
    });
    expect(manifests.some((manifest) => manifest.kind === "Secret")).toBe(false);
    const secrets = { "ops-raftlock": { token: "t0ken\n", rw: "rw-password\n" }, "ops-readers": { ro: "ro-password" } };
    const pod = podOf(manifests);
    const raftlock = raftlockContainer(pod);
    expectSecretsAsFiles(pod, raftlock, secrets);
    const config = nodeConfigIn(pod, raftlock, "locks-raftlock-0", secrets);
    expect([config.clusterToken, config.authPassword, config.authReadOnlyPassword]).toEqual(["t0ken", "rw-password", "ro-password"]);
    // A Secret without the key named: the pod would not start, and the simulation says so.
    expect(() => secretMounts(pod, raftlock, { ...secrets, "ops-readers": {} })).toThrow(/has no key ro/);
  });

  it("refuses a read-only password without a password, or equal to it", () => {
    expect(() => render({ auth: { readonlyPassword: { value: "ro" } } })).toThrow(/auth.readonlyPassword needs auth.password/);
    expect(() => render({ auth: { readonlyPassword: { existingSecret: "readers" } } })).toThrow(/auth.readonlyPassword needs auth.password/);
    expect(() => render({ auth: { password: { value: "same" }, readonlyPassword: { value: "same" } } })).toThrow(/must differ/);
  });

  it("turns RESP off with resp.enabled false, although the image defaults RAFTLOCK_RESP_LISTEN", () => {
    expect(readRepoFile("Dockerfile")).toMatch(/RAFTLOCK_RESP_LISTEN=\S+/);
    const manifests = render({ resp: { enabled: false } });
    const pod = podOf(manifests);
    const raftlock = raftlockContainer(pod);
    expect(flagValue(raftlock.args!, "resp-listen")).toBeUndefined();
    expect(raftlock.env!.find((variable) => variable.name === "RAFTLOCK_RESP_LISTEN")?.value).toBe("");
    expect(raftlock.ports!.map((port) => port.name)).not.toContain("resp");
    // The image's default as the container would see it, overridden by the chart's empty value.
    const env = { RAFTLOCK_RESP_LISTEN: "0.0.0.0:6381", ...containerEnvironment(raftlock, { name: "locks-raftlock-0", namespace: "prod" }, {}) };
    const hostPath = writeMounts(secretMounts(pod, raftlock, secretsOf(manifests)), scratchDirectory());
    expect(parseStartConfig(argsOnHost(raftlock.args!.slice(1).map((arg) => expandKubernetesVariables(arg, env)), hostPath), env).respListen).toBeUndefined();
  });

  it("listens, exposes, probes and annotates on the same ports values", () => {
    const ports = { peer: 7101, http: 8481, resp: 6481 };
    const manifests = render({ ports });
    const raftlock = raftlockContainer(podOf(manifests));
    const args = raftlock.args!;
    for (const [flag, key] of [["peer-listen", "peer"], ["http-listen", "http"], ["resp-listen", "resp"]] as const) {
      expect(flagValue(args, flag)).toBe(`0.0.0.0:${ports[key]}`);
      expect(raftlock.ports!.find((port) => port.name === key)?.containerPort).toBe(ports[key]);
    }
    expect(flagValue(args, "peers")).toBe(`dns:locks-raftlock-peers.prod.svc.cluster.local:${ports.peer}`);
    expect(raftlock.env!.find((variable) => variable.name === "RAFTLOCK_HTTP")?.value).toBe(`127.0.0.1:${ports.http}`);
    const probes = [raftlock.startupProbe, raftlock.livenessProbe, raftlock.readinessProbe].map((probe) => `${probe?.httpGet?.path} ${probe?.httpGet?.port} ${probe?.httpGet?.scheme}`);
    expect(probes).toEqual(["/healthz http HTTP", "/healthz http HTTP", "/readyz http HTTP"]);
    expect(annotationsOf(manifests)).toMatchObject({ "prometheus.io/port": String(ports.http), "prometheus.io/path": "/metrics", "prometheus.io/scheme": "http" });
    const statefulSet = only(manifests, "StatefulSet").spec as unknown as StatefulSetSpec;
    expect(statefulSet.podManagementPolicy).toBe("Parallel");
    expect(statefulSet.serviceName).toBe("locks-raftlock-peers");
    const peers = manifests.find((manifest) => manifest.kind === "Service" && manifest.metadata.name === "locks-raftlock-peers")!.spec as unknown as ServiceSpec;
    expect(peers.publishNotReadyAddresses).toBe(true);
    expect(peers.ports.map((port) => `${port.name} ${port.port}`)).toEqual([`peer ${ports.peer}`, `http ${ports.http}`]);
  });

  it("runs raftlock as a native sidecar, with its volumes, when asked", () => {
    const pod = podOf(render({ nativeSidecar: true, appContainers: [{ name: "app", image: "app:1" }] }));
    expect(pod.containers.map((container) => container.name)).toEqual(["app"]);
    expect((raftlockContainer(pod) as Container & { restartPolicy?: string }).restartPolicy).toBe("Always");
    expectSecretsAsFiles(pod, raftlockContainer(pod), { "locks-raftlock-token": { "cluster-token": "t" } });
    expect(() => render({ nativeSidecar: true })).toThrow(/nativeSidecar needs appContainers/);
  });

  it("with tls.peer, mounts the TLS Secret and gives the node its certificate, key and CA for peers", () => {
    const { manifests, secrets, pod, raftlock } = renderWithTls({ tls: { peer: { enabled: true, secretName: "locks-peer-tls" } } }, "locks-peer-tls");
    const args = raftlock.args!;
    expect(flagsOf(args).filter((flag) => flag.includes("tls"))).toEqual(["peer-tls-cert", "peer-tls-key", "peer-tls-ca"]);
    expect([flagValue(args, "peer-tls-cert"), flagValue(args, "peer-tls-key"), flagValue(args, "peer-tls-ca")]).toEqual([
      "/etc/raftlock/peer-tls/tls.crt",
      "/etc/raftlock/peer-tls/tls.key",
      "/etc/raftlock/peer-tls/ca.crt",
    ]);
    const config = nodeConfigIn(pod, raftlock, "locks-raftlock-0", secrets);
    expect(config.peerTls).toBeDefined();
    expect(config.clientTls).toBeUndefined();
    // Client ports stay plain: probes, joins and the scrape as before.
    expect(raftlock.readinessProbe?.httpGet?.scheme).toBe("HTTP");
    expect(nodeConfigIn(pod, raftlock, "locks-raftlock-3", secrets).join[0]).toMatch(/^http:\/\//);
    expect(annotationsOf(manifests)["prometheus.io/scheme"]).toBe("http");
    expect(() => render({ tls: { peer: { enabled: true } } })).toThrow(/tls.peer.enabled needs tls.peer.secretName/);
  });

  it("with tls.client, serves HTTPS: probes with scheme HTTPS, joins over https with --join-tls-ca, scrapes https", () => {
    const { manifests, secrets, pod, raftlock } = renderWithTls({ tls: { client: { enabled: true, secretName: "locks-client-tls" } } }, "locks-client-tls");
    const args = raftlock.args!;
    expect(flagsOf(args).filter((flag) => flag.includes("tls"))).toEqual(["client-tls-cert", "client-tls-key", "join-tls-ca"]);
    expect(flagValue(args, "join-tls-ca")).toBe("/etc/raftlock/client-tls/ca.crt");
    for (const probe of [raftlock.startupProbe, raftlock.livenessProbe, raftlock.readinessProbe]) expect(probe?.httpGet?.scheme).toBe("HTTPS");
    expect(annotationsOf(manifests)["prometheus.io/scheme"]).toBe("https");
    const bootstrapping = nodeConfigIn(pod, raftlock, "locks-raftlock-0", secrets);
    expect(bootstrapping.clientTls?.ca).toBeUndefined();
    const joining = nodeConfigIn(pod, raftlock, "locks-raftlock-3", secrets);
    expect(joining.join).toEqual([0, 1, 2].map((ordinal) => `https://locks-raftlock-${ordinal}.locks-raftlock-peers.prod.svc.cluster.local:8381`));
    expect(joining.joinTlsCa).toMatch(/\/etc\/raftlock\/client-tls\/ca\.crt$/);
    // `kubectl exec ... -- raftlock status` dials the pod's own DNS name (which joins need in the certificate anyway) over https.
    const env = containerEnvironment(raftlock, { name: "locks-raftlock-0", namespace: "prod" }, {});
    expect(env.RAFTLOCK_HTTP).toBe("https://locks-raftlock-0.locks-raftlock-peers.prod.svc.cluster.local:8381");
    expect(env.RAFTLOCK_TLS_CA).toBe("/etc/raftlock/client-tls/ca.crt");
    expect(env.RAFTLOCK_TLS_CERT).toBeUndefined();
    expect(() => render({ tls: { client: { enabled: true } } })).toThrow(/tls.client.enabled needs tls.client.secretName/);
  });

  describe("with tls.client.requireClientCertificates", () => {
    let server: Server | undefined;
    afterAll(() => server?.close());

    it("asks clients for certificates of the Secret's CA, and refuses to render without client TLS", () => {
      const { secrets, pod, raftlock } = renderWithTls({ tls: { client: { enabled: true, secretName: "locks-client-tls", requireClientCertificates: true } } }, "locks-client-tls");
      expect(flagValue(raftlock.args!, "client-tls-ca")).toBe("/etc/raftlock/client-tls/ca.crt");
      expect(nodeConfigIn(pod, raftlock, "locks-raftlock-0", secrets).clientTls?.ca).toMatch(/\/etc\/raftlock\/client-tls\/ca\.crt$/);
      const env = containerEnvironment(raftlock, { name: "locks-raftlock-0", namespace: "prod" }, {});
      expect([env.RAFTLOCK_TLS_CERT, env.RAFTLOCK_TLS_KEY]).toEqual(["/etc/raftlock/client-tls/tls.crt", "/etc/raftlock/client-tls/tls.key"]);
      expect(() => render({ tls: { client: { requireClientCertificates: true } } })).toThrow(/requireClientCertificates needs tls.client.enabled/);
    });

    it("probes with exec (the kubelet cannot present a certificate), passing only with the pod's own certificate", async () => {
      // A stand-in for the node's HTTPS port: certificates of the CA required, /healthz up, /readyz not yet.
      server = createServer({ cert: tlsSecret["tls.crt"], key: tlsSecret["tls.key"], ca: tlsSecret["ca.crt"], requestCert: true, rejectUnauthorized: true }, (request, response) => {
        response.writeHead(request.url === "/healthz" ? 200 : 503).end();
      });
      await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
      const port = (server.address() as AddressInfo).port;
      const manifests = render({ ports: { http: port }, tls: { client: { enabled: true, secretName: "locks-client-tls", requireClientCertificates: true } } });
      const pod = podOf(manifests);
      const raftlock = raftlockContainer(pod);
      const probes = [raftlock.startupProbe!, raftlock.livenessProbe!, raftlock.readinessProbe!];
      for (const probe of probes) {
        expect(probe.httpGet).toBeUndefined();
        expect(probe.timeoutSeconds).toBeGreaterThanOrEqual(3); // a node process starting on a busy node
      }
      const clientTlsMount = raftlock.volumeMounts!.find((mount) => mount.name === "client-tls")!.mountPath;
      /** Runs a probe's command as the container would, with `secret` mounted as the client TLS Secret. */
      const exitCodeOf = (command: readonly string[], secret: Record<string, string>): Promise<number | null> => {
        const hostPath = writeMounts(secretMounts(pod, raftlock, { ...secretsOf(manifests), "locks-client-tls": secret }), scratchDirectory());
        expect(command.slice(0, 2)).toEqual(["node", "-e"]);
        expect(command[2]).toContain(`'${clientTlsMount}/'`);
        const script = command[2]!.replaceAll(`'${clientTlsMount}/'`, `'${hostPath(`${clientTlsMount}/`)}'`);
        return new Promise((resolve, reject) => {
          const child = spawn(process.execPath, ["-e", script, ...command.slice(3)], { stdio: "ignore" });
          child.on("error", reject);
          child.on("exit", (code) => resolve(code));
        });
      };
      const [startup, liveness, readiness] = probes.map((probe) => probe.exec!.command);
      expect(await exitCodeOf(startup!, tlsSecret)).toBe(0);
      expect(await exitCodeOf(liveness!, tlsSecret)).toBe(0);
      expect(await exitCodeOf(readiness!, tlsSecret)).toBe(1); // 503: not ready
      expect(await exitCodeOf(liveness!, strangerSecret)).toBe(1); // refused in the handshake
    }, 30_000);
  });

  it("is versioned with the package, and documents the membership procedures in NOTES.txt and README.md", () => {
    const packageJson = JSON.parse(readRepoFile("package.json")) as { version: string };
    expect(chart.name).toBe("raftlock");
    expect(chart.appVersion).toBe(packageJson.version);
    const notes = templates.find((template) => template.file.endsWith("/NOTES.txt"))!.text;
    const chartReadme = readRepoFile("helm/raftlock/README.md");
    for (const text of [notes, chartReadme]) {
      expect(text).toContain("raftlock members remove");
      expect(text).toMatch(/initialMembers/);
      expect(text).toMatch(/delete pvc/);
    }
  });

  it("documents certificate rotation: SIGHUP to the node, PID 1 of its container, or a rollout restart", () => {
    const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(readRepoFile("Dockerfile"))![1]!) as string[];
    expect(entrypoint[0]).toBe("node"); // exec form: node itself is PID 1, so `kill -HUP 1` reaches it
    for (const text of [readRepoFile("helm/raftlock/values.yaml"), readRepoFile("helm/raftlock/README.md")]) {
      expect(text).toContain("kill -HUP 1");
      expect(text).toContain("rollout restart");
    }
  });

  it("lists every value in README.md's values table", () => {
    const chartReadme = readRepoFile("helm/raftlock/README.md");
    const missing: string[] = [];
    const walk = (node: unknown, at: string): void => {
      if (at !== "" && (!isObject(node) || [...references].includes(at) || Object.keys(node).length === 0)) {
        if (!chartReadme.includes(`| \`${at}\``)) missing.push(at);
        return;
      }
      for (const [key, sub] of Object.entries(node as Record<string, unknown>)) walk(sub, at === "" ? key : `${at}.${key}`);
    };
    walk(values, "");
    expect(missing).toEqual([]);
  });
});

describe("the deployment docs", () => {
  const documents = ["README.md", "helm/raftlock/README.md", "helm/raftlock/templates/NOTES.txt", "deploy/kustomization.yaml"];

  it("use only raftlock subcommands that exist", () => {
    const known = new Set([...clientUsage.matchAll(/raftlock (members [a-z]+|[a-z-]+)/g)].map((match) => match[1]!));
    for (const file of documents) {
      for (const match of readRepoFile(file).matchAll(/-- raftlock (members [a-z]+|[a-z-]+)/g)) {
        expect(known, `"raftlock ${match[1]}" in ${file}`).toContain(match[1]);
      }
    }
  });

  it("name only real `raftlock start` flags in the README's commands", () => {
    const readme = readRepoFile("README.md");
    expect(readme).toContain("### Peer discovery in a StatefulSet");
    // Command lines in code blocks (continued with a backslash), without their trailing comments.
    const commands = [...readme.matchAll(/^raftlock start ([^\n]*(?:\\\n[^\n]*)*)/gm)];
    expect(commands.length).toBeGreaterThanOrEqual(3);
    for (const match of commands) {
      const args = match[1]!.replace(/#[^\n]*/g, "").split(/\s+/);
      for (const flag of flagsOf(args)) expect([...flagNames, "help"], `--${flag}`).toContain(flag);
    }
  });
});
