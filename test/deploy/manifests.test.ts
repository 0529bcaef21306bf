// deploy/ (kustomize base) and helm/raftlock/ against the node's real flags, so that the manifests, the
// chart and `raftlock start` cannot drift apart. deploy/ is checked as its files are and, when kubectl is
// installed, as `kubectl kustomize` renders it. Helm is not installed here: the chart's container args are
// substituted with values.yaml's defaults by a small reader of the simple expressions they use.
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { clientUsage } from "../../src/cli-admin.js";
import { envName, parseStartConfig, startFlags } from "../../src/config.js";
import { isObject, unsupportedKeywords, validate, type Schema } from "./json-schema-subset.js";
import {
  chartRaftlockArgs,
  chartTemplateFiles,
  containerEnvironment,
  deployFiles,
  expandKubernetesVariables,
  hasKubectl,
  only,
  readRepoFile,
  renderDeploy,
  valueAt,
  type Manifest,
  type ServiceSpec,
  type StatefulSetSpec,
  type TemplateContext,
} from "./kubernetes.js";

const flagNames = new Set(startFlags.map((flag) => flag.name));
/** RAFTLOCK_* variables that are not `start` flags: the admin CLI's target (cli-admin.ts, envName("http")). */
const clientEnvNames = new Set([envName("http")]);
const realEnvNames = new Set([...startFlags.map((flag) => envName(flag.name)), ...clientEnvNames]);

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
  const raftlock = [...pod.containers, ...(pod.initContainers ?? [])].find((container) => container.name === "raftlock")!;
  const args = raftlock.args ?? [];
  const initialMembers = Number(flagValue(args, "replicas"));
  const portNamed = (portName: string | number): number =>
    typeof portName === "number" ? portName : raftlock.ports!.find((port) => port.name === portName)!.containerPort;
  const secrets = { "cluster-token": "test-cluster-token" };
  /** The config the node would build in pod `<sts>-<ordinal>` of namespace "prod". */
  const configOf = (ordinal: number) => {
    const env = containerEnvironment(raftlock, { name: `${statefulSet.metadata.name}-${ordinal}`, namespace: "prod" }, secrets);
    return parseStartConfig(args.slice(1).map((arg) => expandKubernetesVariables(arg, env)), env);
  };

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

  it("takes the cluster token from a Secret, never from a literal", () => {
    const token = raftlock.env!.find((variable) => variable.name === envName("cluster-token"));
    expect(token?.value).toBeUndefined();
    expect(token?.valueFrom?.secretKeyRef?.key).toBe("cluster-token");
    expect(token?.valueFrom?.secretKeyRef?.optional).not.toBe(true);
    expect(manifests.some((manifest) => manifest.kind === "Secret")).toBe(false);
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
    for (const probe of [raftlock.livenessProbe, raftlock.startupProbe, raftlock.readinessProbe]) expect(portNamed(probe!.httpGet!.port)).toBe(httpPort);
    // SIGTERM already hands leadership over; a preStop would only delay it.
    expect(raftlock.lifecycle).toBeUndefined();
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(15);
    const annotations = sts.template.metadata.annotations ?? {};
    expect(annotations["prometheus.io/scrape"]).toBe("true");
    expect(Number(annotations["prometheus.io/port"])).toBe(httpPort);
    expect(annotations["prometheus.io/path"]).toBe("/metrics");
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
    expect(config.clusterToken).toBe("test-cluster-token");
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
  const values = parseYaml(readRepoFile("helm/raftlock/values.yaml")) as Record<string, unknown>;
  const schema = JSON.parse(readRepoFile("helm/raftlock/values.schema.json")) as Schema;
  const templates = chartTemplateFiles();
  const helpers = templates.find((template) => template.file.endsWith("/_helpers.tpl"))!.text;
  const chart = parseYaml(readRepoFile("helm/raftlock/Chart.yaml")) as { name: string; version: string; appVersion: string };
  const context = (valuesGiven: unknown): TemplateContext => ({
    values: valuesGiven,
    releaseName: "locks",
    namespace: "prod",
    includes: { "raftlock.fullname": "locks-raftlock", "raftlock.peersService": "locks-raftlock-peers" },
  });
  /** Every `.Values.a.b` the templates read. */
  const references = new Set(templates.flatMap(({ text }) => [...text.matchAll(/\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)].map((match) => match[1]!.slice(1))));

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
    const withValue = (dottedPath: string, value: unknown): unknown => {
      const copy = structuredClone(values);
      const keys = dottedPath.split(".");
      let node = copy as Record<string, unknown>;
      for (const key of keys.slice(0, -1)) node = node[key] as Record<string, unknown>;
      node[keys.at(-1)!] = value;
      return copy;
    };
    expect(validate(schema, withValue("replicas", 0))).toEqual(["values.replicas: 0 is below the minimum 1"]);
    expect(validate(schema, withValue("cluster.initialMembers", "3"))).toHaveLength(1);
    expect(validate(schema, withValue("ports.http", 70_000))).toHaveLength(1);
    expect(validate(schema, withValue("raft.readMode", "fast"))).toHaveLength(1);
    expect(validate(schema, withValue("terminationGracePeriodSeconds", 5))).toHaveLength(1);
    expect(validate(schema, withValue("persistence.size", "lots"))).toHaveLength(1);
    expect(validate(schema, withValue("extraArgs", ["--log-level"]))).toHaveLength(1);
    expect(validate(schema, { ...values, replica: 3 })).toEqual(["values.replica: not allowed (no such value)"]);
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

  it("passes raftlock only real `raftlock start` flags and RAFTLOCK_* variables", () => {
    const templateFlags = [...helpers.matchAll(/^\s*- "?--([a-z][a-z0-9-]*)/gm)].map((match) => match[1]!);
    expect(templateFlags.length).toBeGreaterThan(10);
    for (const flag of templateFlags) expect(flagNames, `--${flag}`).toContain(flag);
    const envNames = templates.flatMap(({ text }) => [...text.matchAll(/name: (RAFTLOCK_[A-Z_]+)/g)].map((match) => match[1]!));
    expect(envNames).toContain(envName("cluster-token"));
    for (const name of envNames) expect(realEnvNames, name).toContain(name);
  });

  it("defaults the Raft settings to the node's own defaults", () => {
    const args = chartRaftlockArgs(helpers, context(values));
    // Listen addresses excepted: the node defaults to loopback, a pod must listen where the kubelet's probes reach.
    for (const flag of startFlags.filter((spec) => !spec.name.endsWith("-listen"))) {
      const given = flagValue(args, flag.name);
      if (given !== undefined && flag.defaultValue !== undefined) expect(given, `--${flag.name}`).toBe(flag.defaultValue);
    }
  });

  it("renders container args the node accepts, in an ordinal that bootstraps and in one that joins", () => {
    const args = chartRaftlockArgs(helpers, context(values));
    expect(args[0]).toBe("start");
    const configOf = (podName: string) => parseStartConfig(args.slice(1).map((arg) => expandKubernetesVariables(arg, { POD_NAME: podName })), { RAFTLOCK_CLUSTER_TOKEN: "t" });
    const first = configOf("locks-raftlock-0");
    expect([...first.peers.keys()]).toEqual(["locks-raftlock-0", "locks-raftlock-1", "locks-raftlock-2"]);
    expect(first.peerAdvertise).toEqual({ host: "locks-raftlock-0.locks-raftlock-peers.prod.svc.cluster.local", port: 7001 });
    expect(first.respListen?.port).toBe(6381);
    const joining = configOf("locks-raftlock-4");
    expect(joining.join[0]).toBe("http://locks-raftlock-0.locks-raftlock-peers.prod.svc.cluster.local:8381");
    // Large numbers must reach the node as integers (Helm prints a float64 1000000 as 1e+06).
    const tuned = structuredClone(values) as { raft: { snapshotEveryEntries: number } };
    tuned.raft.snapshotEveryEntries = 1_000_000;
    expect(flagValue(chartRaftlockArgs(helpers, context(tuned)), "snapshot-every-entries")).toBe("1000000");
  });

  it("turns RESP off with resp.enabled false, although the image defaults RAFTLOCK_RESP_LISTEN", () => {
    expect(readRepoFile("Dockerfile")).toMatch(/RAFTLOCK_RESP_LISTEN=\S+/);
    expect(helpers).toMatch(/\{\{- if not \.Values\.resp\.enabled \}\}\n(?:\s*#.*\n)*\s*- name: RAFTLOCK_RESP_LISTEN\n\s*value: ""\n/);
    const args = chartRaftlockArgs(helpers, context(values)).filter((arg) => !arg.startsWith("--resp-listen="));
    const env = { POD_NAME: "locks-raftlock-0", RAFTLOCK_CLUSTER_TOKEN: "t", RAFTLOCK_RESP_LISTEN: "" };
    expect(parseStartConfig(args.slice(1).map((arg) => expandKubernetesVariables(arg, env)), env).respListen).toBeUndefined();
  });

  it("listens, exposes and probes on the same ports values", () => {
    for (const [flag, key] of [["peer-listen", "peer"], ["http-listen", "http"], ["resp-listen", "resp"]] as const) {
      expect(helpers).toContain(`- --${flag}=0.0.0.0:{{ .Values.ports.${key} }}`);
      expect(helpers).toMatch(new RegExp(`- name: ${key}\\n\\s+containerPort: \\{\\{ \\.Values\\.ports\\.${key} \\}\\}`));
    }
    expect(helpers).toContain(`--peers=dns:{{ include "raftlock.peersService" . }}.{{ .Release.Namespace }}.svc.{{ .Values.cluster.clusterDomain }}:{{ .Values.ports.peer }}`);
    expect(helpers).toContain(`value: "127.0.0.1:{{ .Values.ports.http }}"`);
    const probes = [...helpers.matchAll(/(startupProbe|livenessProbe|readinessProbe):\n\s+httpGet:\n\s+path: (\S+)\n\s+port: (\S+)/g)].map((match) => match.slice(1).join(" "));
    expect(probes).toEqual(["startupProbe /healthz http", "livenessProbe /healthz http", "readinessProbe /readyz http"]);
    const statefulSet = templates.find((template) => template.file.endsWith("/statefulset.yaml"))!.text;
    expect(statefulSet).toContain("podManagementPolicy: Parallel");
    expect(statefulSet).toContain("serviceName: {{ include \"raftlock.peersService\" . }}");
    expect(statefulSet).toContain("prometheus.io/port: {{ .Values.ports.http | quote }}");
    expect(statefulSet).toContain("prometheus.io/path: /metrics");
    const services = templates.find((template) => template.file.endsWith("/services.yaml"))!.text;
    expect(services).toContain("publishNotReadyAddresses: true");
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
