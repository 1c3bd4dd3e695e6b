#!/usr/bin/env node
// Offline validation of deploy/kubernetes: every object named by
// kustomization.yaml against the Kubernetes OpenAPI schemas that the npm
// package kubernetes-models compiles (types, required fields, formats), and
// the ties between the objects that a schema cannot see: Service and
// PodDisruptionBudget selectors select the Deployment's pods, every Secret
// and ConfigMap the pods read exists with the keys read, named target ports
// exist, probes are native gRPC probes on the gRPC port, the headless
// Service, non-root with a read-only root file system, requests = limits.
// Then it checks that it can fail: broken copies of the Deployment must be
// rejected. No cluster and no network.
//
// usage: node validate_manifests.cjs DEPLOY_TOOLS_DIR MANIFEST_DIR
//   DEPLOY_TOOLS_DIR: where scripts/setup.sh ran `npm ci` for
//                     tests/deploy/package-lock.json (var/deploy-tools)
"use strict";
const fs = require("fs");
const path = require("path");
const { createRequire } = require("module");

const [toolsDir, manifestDir] = process.argv.slice(2);
if (!toolsDir || !manifestDir) {
  console.error("usage: validate_manifests.cjs DEPLOY_TOOLS_DIR MANIFEST_DIR");
  process.exit(2);
}
const toolsRequire = createRequire(path.join(path.resolve(toolsDir), "package.json"));
let YAML;
try {
  YAML = toolsRequire("yaml");
  toolsRequire("kubernetes-models/v1");
} catch (e) {
  console.error(`validate_manifests: kubernetes-models/yaml not installed in ${toolsDir} ` +
                `(run scripts/setup.sh): ${e.message}`);
  process.exit(1);
}

let failures = 0;
const fail = (message) => { failures++; console.log(`FAIL: ${message}`); };
const pass = (message) => console.log(`PASS: ${message}`);

// "apps/v1" -> kubernetes-models/apps/v1; "v1" -> kubernetes-models/v1.
function modelClass(apiVersion, kind) {
  let module;
  try {
    module = toolsRequire(`kubernetes-models/${apiVersion}`);
  } catch (e) {
    return null;
  }
  return module[kind] || null;
}

// Schema errors of one object ("" when valid; "no schema" for an unknown kind).
function schemaErrors(object) {
  const Model = modelClass(object.apiVersion, object.kind);
  if (!Model) return `no schema for ${object.apiVersion} ${object.kind}`;
  try {
    new Model(object).validate();
    return "";
  } catch (e) {
    return e.message;
  }
}

// ---- load what kustomization.yaml names ------------------------------------
const kustomization = YAML.parse(fs.readFileSync(path.join(manifestDir, "kustomization.yaml"), "utf8"));
const knownKustomizeKeys = new Set(["apiVersion", "kind", "namespace", "resources", "images",
                                    "labels", "commonLabels", "configMapGenerator", "patches"]);
for (const key of Object.keys(kustomization)) {
  if (!knownKustomizeKeys.has(key)) fail(`kustomization.yaml: unexpected key ${key}`);
}
if (kustomization.kind !== "Kustomization" ||
    kustomization.apiVersion !== "kustomize.config.k8s.io/v1beta1") {
  fail("kustomization.yaml is not a kustomize.config.k8s.io/v1beta1 Kustomization");
}
const objects = [];
for (const file of kustomization.resources || []) {
  const full = path.join(manifestDir, file);
  if (!fs.existsSync(full)) { fail(`kustomization.yaml names ${file}, which does not exist`); continue; }
  for (const doc of YAML.parseAllDocuments(fs.readFileSync(full, "utf8"))) {
    if (doc.errors.length) { fail(`${file}: YAML: ${doc.errors[0].message}`); continue; }
    const object = doc.toJS();
    if (object == null) continue;
    objects.push({ file, object });
  }
}
const listed = new Set(kustomization.resources || []);
for (const file of fs.readdirSync(manifestDir)) {
  if (file.endsWith(".yaml") && file !== "kustomization.yaml" && !listed.has(file)) {
    fail(`${file} is not in kustomization.yaml's resources`);
  }
}

// ---- 1. schemas ---------------------------------------------------------------
for (const { file, object } of objects) {
  const what = `${file}: ${object.kind} ${object.metadata && object.metadata.name}`;
  const errors = schemaErrors(object);
  if (errors) fail(`${what}: ${errors}`); else pass(`${what} matches the ${object.apiVersion} schema`);
}

// ---- 2. ties between the objects -------------------------------------------------
const ofKind = (kind) => objects.filter((o) => o.object.kind === kind).map((o) => o.object);
const selects = (selector, labels) =>
  Object.entries(selector || {}).length > 0 &&
  Object.entries(selector).every(([k, v]) => labels[k] === v);
const check = (ok, message) => (ok ? pass(message) : fail(message));

const deployments = ofKind("Deployment");
check(deployments.length === 1, "exactly one Deployment");
const deployment = deployments[0];
if (deployment) {
  const spec = deployment.spec;
  const pod = spec.template.spec;
  const podLabels = spec.template.metadata.labels || {};
  check(spec.replicas === 3, `Deployment runs 3 replicas (${spec.replicas})`);
  check(selects(spec.selector.matchLabels, podLabels), "Deployment's selector selects its own pods");
  const container = pod.containers.find((c) => c.name === "bnserve");
  check(!!container, "Deployment has container bnserve");
  const ports = Object.fromEntries((container.ports || []).map((p) => [p.name, p.containerPort]));
  check(ports.grpc === 50051 && ports.http === 8000, "container ports grpc 50051 and http 8000");
  const args = (container.args || []).join(" ");
  for (const flag of ["--registry=", "--replica_id=", "--listen=0.0.0.0:50051", "--http_listen=0.0.0.0:8000"]) {
    check(args.includes(flag), `bnserve's args have ${flag}`);
  }
  // Every $(VAR) in args is defined by env or envFrom (else Kubernetes
  // passes the text "$(VAR)" on unexpanded).
  const env = new Set((container.env || []).map((e) => e.name));
  for (const source of container.envFrom || []) {
    const cm = source.configMapRef && ofKind("ConfigMap").find((c) => c.metadata.name === source.configMapRef.name);
    check(!!cm, `envFrom ConfigMap ${source.configMapRef && source.configMapRef.name} exists`);
    if (cm) Object.keys(cm.data || {}).forEach((k) => env.add(k));
  }
  for (const [, name] of args.matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
    check(env.has(name), `args' $(${name}) is defined in the container's environment`);
  }
  for (const e of container.env || []) {
    const ref = e.valueFrom && (e.valueFrom.secretKeyRef || e.valueFrom.configMapKeyRef);
    if (!ref) continue;
    const kind = e.valueFrom.secretKeyRef ? "Secret" : "ConfigMap";
    const target = ofKind(kind).find((o) => o.metadata.name === ref.name);
    const keys = target ? Object.keys({ ...(target.data || {}), ...(target.stringData || {}) }) : [];
    check(!!target && keys.includes(ref.key), `env ${e.name}: ${kind} ${ref.name} has key ${ref.key}`);
  }
  for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) {
    const p = container[probe];
    check(!!p && !!p.grpc && p.grpc.port === 50051, `${probe} is a native gRPC probe on 50051`);
  }
  const readiness = container.readinessProbe && container.readinessProbe.grpc;
  const cm = ofKind("ConfigMap").find((c) => c.metadata.name === "bnserve-config");
  const defaultModel = cm && cm.data && cm.data.BNSERVE_DEFAULT_MODEL;
  if (defaultModel) {
    check(readiness && readiness.service === `bnserve.model.${defaultModel}`,
          `readiness asks for bnserve.model.${defaultModel} (the default model loaded)`);
  }
  const sc = { ...(pod.securityContext || {}), ...(container.securityContext || {}) };
  check(sc.runAsNonRoot === true && Number.isInteger(sc.runAsUser) && sc.runAsUser !== 0,
        `runs as non-root (uid ${sc.runAsUser})`);
  check(sc.readOnlyRootFilesystem === true && sc.allowPrivilegeEscalation === false &&
        sc.capabilities && (sc.capabilities.drop || []).includes("ALL"),
        "read-only root fs, no privilege escalation, all capabilities dropped");
  const r = container.resources || {};
  check(r.requests && r.limits && r.requests.cpu === "2" && r.limits.cpu === "2" &&
        r.requests.memory === r.limits.memory, "requests = limits, 2 CPUs (Guaranteed QoS)");
  const volumes = new Set((pod.volumes || []).map((v) => v.name));
  for (const m of container.volumeMounts || []) check(volumes.has(m.name), `volume ${m.name} is defined`);

  // Services and the PodDisruptionBudget select the pods; named targetPorts exist.
  const services = ofKind("Service");
  for (const service of services) {
    check(selects(service.spec.selector, podLabels), `Service ${service.metadata.name} selects the pods`);
    for (const port of service.spec.ports) {
      const target = port.targetPort;
      check(typeof target === "number" ? Object.values(ports).includes(target) : target in ports,
            `Service ${service.metadata.name} port ${port.name} targets a container port (${target})`);
    }
  }
  const grpcService = services.find((s) => s.metadata.name === "bnserve-grpc");
  check(grpcService && grpcService.spec.clusterIP === "None" &&
        grpcService.spec.ports.some((p) => p.port === 50051),
        "bnserve-grpc is headless (clusterIP None) on 50051: dns:/// round-robin");
  check(services.some((s) => s.metadata.name === "bnserve-http" && s.spec.ports.some((p) => p.port === 8000)),
        "bnserve-http serves port 8000");
  const pdbs = ofKind("PodDisruptionBudget");
  check(pdbs.length === 1 && selects(pdbs[0].spec.selector.matchLabels, podLabels),
        "the PodDisruptionBudget selects the pods");
}
const namespaces = ofKind("Namespace").map((n) => n.metadata.name);
check(namespaces.includes(kustomization.namespace), `kustomization's namespace ${kustomization.namespace} is created`);

// ---- 3. the validator rejects what it should -------------------------------------
if (deployment) {
  const broken = [
    ["replicas as a string", (d) => { d.spec.replicas = "3"; }],
    ["a gRPC probe without a port", (d) => { delete d.spec.template.spec.containers[0].readinessProbe.grpc.port; }],
    ["a container without a name", (d) => { delete d.spec.template.spec.containers[0].name; }],
    ["no selector", (d) => { delete d.spec.selector; }],
  ];
  for (const [what, breakIt] of broken) {
    const copy = JSON.parse(JSON.stringify(deployment));
    breakIt(copy);
    check(schemaErrors(copy) !== "", `the schema check rejects a Deployment with ${what}`);
  }
}

console.log(`${objects.length} objects; ${failures} failure(s)`);
process.exit(failures === 0 ? 0 : 1);
