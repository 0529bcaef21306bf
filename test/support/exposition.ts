// A small parser of the Prometheus text exposition format (version 0.0.4), strict enough to catch a
// malformed line: every sample belongs to a family declared by # HELP and # TYPE, label values are
// quoted and escaped, values are numbers (or NaN / ±Inf).

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  readonly type: string;
  readonly help: string;
  readonly samples: Sample[];
}

const metricNamePattern = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const labelNamePattern = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const types = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);
const suffixes = ["_bucket", "_sum", "_count", "_total", "_created"];

export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const helps = new Map<string, string>();
  const lines = text.split("\n");
  if (lines.at(-1) !== "") throw new Error("the exposition must end with a newline");
  lines.forEach((line, lineIndex) => {
    const where = `line ${lineIndex + 1} (${JSON.stringify(line.slice(0, 80))})`;
    if (line === "") return;
    if (line.startsWith("# HELP ")) {
      const [name, ...rest] = line.slice("# HELP ".length).split(" ");
      if (!metricNamePattern.test(name!)) throw new Error(`bad metric name in HELP at ${where}`);
      helps.set(name!, rest.join(" "));
      return;
    }
    if (line.startsWith("# TYPE ")) {
      const [name, type] = line.slice("# TYPE ".length).split(" ");
      if (!metricNamePattern.test(name!) || !types.has(type!)) throw new Error(`bad TYPE at ${where}`);
      if (families.has(name!)) throw new Error(`family ${name} declared twice at ${where}`);
      families.set(name!, { name: name!, type: type!, help: helps.get(name!) ?? "", samples: [] });
      return;
    }
    if (line.startsWith("#")) return;
    const sample = parseSample(line, where);
    const family = familyOf(families, sample.name);
    if (family === undefined) throw new Error(`sample ${sample.name} has no # TYPE before it at ${where}`);
    family.samples.push(sample);
  });
  return families;
}

function familyOf(families: Map<string, Family>, sampleName: string): Family | undefined {
  const exact = families.get(sampleName);
  if (exact !== undefined) return exact;
  for (const suffix of suffixes) if (sampleName.endsWith(suffix)) {
    const family = families.get(sampleName.slice(0, -suffix.length));
    if (family !== undefined) return family;
  }
  return undefined;
}

function parseSample(line: string, where: string): Sample {
  const braceAt = line.indexOf("{");
  const spaceAt = line.indexOf(" ");
  const nameEnd = braceAt >= 0 && braceAt < spaceAt ? braceAt : spaceAt;
  if (nameEnd <= 0) throw new Error(`no value at ${where}`);
  const name = line.slice(0, nameEnd);
  if (!metricNamePattern.test(name)) throw new Error(`bad metric name at ${where}`);
  const labels: Record<string, string> = {};
  let at = nameEnd;
  if (line[at] === "{") {
    at++;
    while (line[at] !== "}") {
      const equalsAt = line.indexOf("=", at);
      if (equalsAt < 0) throw new Error(`bad label at ${where}`);
      const labelName = line.slice(at, equalsAt);
      if (!labelNamePattern.test(labelName)) throw new Error(`bad label name ${labelName} at ${where}`);
      if (line[equalsAt + 1] !== '"') throw new Error(`unquoted label value at ${where}`);
      let value = "";
      at = equalsAt + 2;
      for (;;) {
        const char = line[at];
        if (char === undefined) throw new Error(`unterminated label value at ${where}`);
        at++;
        if (char === '"') break;
        if (char === "\\") {
          const escaped = line[at++];
          if (escaped === "n") value += "\n";
          else if (escaped === "\\" || escaped === '"') value += escaped;
          else throw new Error(`bad escape in label value at ${where}`);
        } else value += char;
      }
      if (labelName in labels) throw new Error(`label ${labelName} repeated at ${where}`);
      labels[labelName] = value;
      if (line[at] === ",") at++;
      else if (line[at] !== "}") throw new Error(`expected , or } at ${where}`);
    }
    at++;
  }
  const [valueText, timestamp, extra] = line.slice(at).trim().split(" ");
  if (extra !== undefined || (timestamp !== undefined && !/^-?\d+$/.test(timestamp))) throw new Error(`bad timestamp at ${where}`);
  // Prometheus parses values with Go's ParseFloat: NaN and Inf in any case (prom-client writes "Nan").
  const special = valueText?.toLowerCase();
  const value = special === "+inf" || special === "inf" ? Infinity : special === "-inf" ? -Infinity : special === "nan" ? NaN : Number(valueText);
  if (valueText === undefined || valueText === "" || (Number.isNaN(value) && special !== "nan")) throw new Error(`bad value at ${where}`);
  return { name, labels, value };
}

/** The value of the one sample of `name` whose labels include `labels`; undefined when none matches. */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = familyOf(families, name);
  const matches = family?.samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value)) ?? [];
  if (matches.length > 1) throw new Error(`${matches.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return matches[0]?.value;
}
