// CI: every Kubernetes manifest under deploy/k8s is what deploy/k8s/manifests.ts writes, and every
// document, as committed and as each kustomization renders it, validates against the Kubernetes
// OpenAPI schemas (kubernetes-models, cert-manager's CRD schemas from @kubernetes-models/cert-manager;
// no network, no cluster). The renderer applies the subset of kustomize the kustomizations use
// (resources, namespace, images, replicas, labels, ConfigMap data patches) and refuses any other
// field, so what is validated is what `kubectl apply -k` would send. Then the wiring is checked:
// references resolve, selectors select, probes and peers name real ports.
//   node --import tsx scripts/k8s-validate.ts
import { Certificate } from '@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate'
import { Issuer } from '@kubernetes-models/cert-manager/cert-manager.io/v1/Issuer'
import { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget'
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap'
import { Service } from 'kubernetes-models/v1/Service'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { K8S_DIR, manifests } from '../deploy/k8s/manifests.ts'

type Doc = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [key: string]: any }

const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'cert-manager.io/v1/Certificate': Certificate,
  'cert-manager.io/v1/Issuer': Issuer,
}
const KUSTOMIZE_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'images', 'replicas', 'labels', 'patches'])

const problems: string[] = []
const problem = (where: string, what: string): void => void problems.push(`${where}: ${what}`)
const show = (path: string): string => relative(process.cwd(), path)

// 1. Generated files are current.
for (const [path, text] of manifests()) {
  const file = join(K8S_DIR, path)
  if (!existsSync(file) || readFileSync(file, 'utf8') !== text) problem(show(file), 'stale: run node --import tsx deploy/k8s/manifests.ts --write')
}

// 2. Every document of every file, as committed.
let validated = 0
function validate(doc: Doc, where: string): void {
  const Model = MODELS[`${doc.apiVersion}/${doc.kind}`]
  if (!Model) return problem(where, `no schema known for ${doc.apiVersion} ${doc.kind}`)
  try {
    new Model(doc).validate()
    validated++
  } catch (error) {
    problem(where, `${doc.kind} ${doc.metadata?.name}: ${error instanceof Error ? error.message : String(error)}`)
  }
}
function readDocs(file: string): Doc[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'))
  return docs.flatMap((d) => {
    if (d.errors.length > 0) {
      problem(show(file), d.errors.map((e) => e.message).join('; '))
      return []
    }
    const value = d.toJSON() as Doc | null
    return value ? [value] : []
  })
}
const yamlFiles = (dir: string): string[] =>
  readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry)
    return statSync(path).isDirectory() ? yamlFiles(path) : path.endsWith('.yaml') ? [path] : []
  })
const kustomizations = yamlFiles(K8S_DIR).filter((f) => f.endsWith('kustomization.yaml'))
for (const file of yamlFiles(K8S_DIR)) if (!file.endsWith('kustomization.yaml')) for (const doc of readDocs(file)) validate(doc, show(file))

// 3. Each kustomization rendered, validated and its wiring checked.
function render(dir: string): Doc[] {
  const file = join(dir, 'kustomization.yaml')
  const [k] = readDocs(file) as unknown as [Record<string, any>]
  for (const key of Object.keys(k)) if (!KUSTOMIZE_FIELDS.has(key)) problem(show(file), `${key}: not rendered by this validator (extend scripts/k8s-validate.ts first)`)
  let docs: Doc[] = []
  for (const resource of k.resources ?? []) {
    const path = join(dir, resource)
    if (!existsSync(path)) problem(show(file), `resource ${resource} does not exist`)
    else docs.push(...(statSync(path).isDirectory() ? render(path) : readDocs(path)))
  }
  for (const { pairs } of k.labels ?? []) for (const doc of docs) doc.metadata.labels = { ...doc.metadata.labels, ...pairs }
  for (const { path } of k.patches ?? []) {
    for (const patch of readDocs(join(dir, path))) {
      const target = docs.find((d) => d.kind === patch.kind && d.metadata.name === patch.metadata.name)
      if (!target || patch.kind !== 'ConfigMap')
        problem(show(file), `patch ${path}: only ConfigMap data patches of existing ConfigMaps are rendered (${patch.kind} ${patch.metadata.name})`)
      else target.data = { ...target.data, ...patch.data }
    }
  }
  for (const { name, count } of k.replicas ?? []) {
    const target = docs.find((d) => d.kind === 'Deployment' && d.metadata.name === name)
    if (!target) problem(show(file), `replicas: no Deployment ${name}`)
    else target.spec.replicas = count
  }
  for (const image of k.images ?? []) {
    for (const doc of docs.filter((d) => d.kind === 'Deployment')) {
      for (const container of doc.spec.template.spec.containers)
        if (container.image === image.name) container.image = `${image.newName ?? image.name}${image.newTag ? `:${image.newTag}` : ''}`
    }
  }
  if (k.namespace) docs = docs.map((d) => ({ ...d, metadata: { ...d.metadata, namespace: k.namespace } }))
  return docs
}

const matches = (selector: Record<string, string>, labels: Record<string, string> = {}): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v)

for (const file of kustomizations) {
  const dir = dirname(file)
  const where = `${show(dir)} (rendered)`
  const docs = render(dir)
  for (const doc of docs) validate(doc, where)
  const byKind = (kind: string) => docs.filter((d) => d.kind === kind)
  const seen = new Set<string>()
  for (const d of docs) {
    const key = `${d.kind}/${d.metadata.name}`
    if (seen.has(key)) problem(where, `${key} defined twice`)
    seen.add(key)
  }
  const configMaps = new Map(byKind('ConfigMap').map((c) => [c.metadata.name, c]))
  const certificateSecrets = new Set(byKind('Certificate').map((c) => c.spec.secretName))
  const overlay = byKind('Certificate').length > 0
  for (const d of byKind('Deployment')) {
    const pod = d.spec.template
    if (!matches(d.spec.selector.matchLabels, pod.metadata.labels)) problem(where, `Deployment ${d.metadata.name}: selector does not select its own pods`)
    for (const c of pod.spec.containers) {
      const ports = new Set(c.ports.map((p: { containerPort: number }) => p.containerPort))
      for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
        if (!c[probe]) problem(where, `Deployment ${d.metadata.name}: no ${probe}`)
        else if (!ports.has(c[probe].grpc?.port)) problem(where, `Deployment ${d.metadata.name}: ${probe} port is not a container port`)
      }
      if (!c.resources?.requests || !c.resources?.limits?.memory) problem(where, `Deployment ${d.metadata.name}: requests and a memory limit are required`)
      for (const from of c.envFrom ?? [])
        if (!configMaps.has(from.configMapRef?.name)) problem(where, `Deployment ${d.metadata.name}: ConfigMap ${from.configMapRef?.name} is not defined`)
    }
    for (const v of pod.spec.volumes ?? []) {
      if (overlay && v.secret && !certificateSecrets.has(v.secret.secretName)) problem(where, `Deployment ${d.metadata.name}: no Certificate writes Secret ${v.secret.secretName}`)
    }
    if (!byKind('Service').some((s) => matches(s.spec.selector, pod.metadata.labels))) problem(where, `Deployment ${d.metadata.name}: no Service selects its pods`)
    if (!byKind('PodDisruptionBudget').some((p) => matches(p.spec.selector.matchLabels, pod.metadata.labels)))
      problem(where, `Deployment ${d.metadata.name}: no PodDisruptionBudget covers it`)
  }
  for (const s of byKind('Service'))
    if (s.spec.clusterIP !== 'None') problem(where, `Service ${s.metadata.name}: must be headless (clusterIP: None) so peers balance over every pod`)
  // Every peer target names a headless Service and one of its ports.
  for (const [variable, target] of Object.entries<string>(configMaps.get('cloudpay-peers')?.data ?? {})) {
    const [, host, port] = /^dns:\/\/\/([^:]+):(\d+)$/.exec(target) ?? []
    const service = byKind('Service').find((s) => s.metadata.name === host)
    if (!service || !service.spec.ports.some((p: { port: number }) => p.port === Number(port))) problem(where, `${variable}=${target} names no Service port`)
  }
  console.log(`${where}: ${docs.length} objects (${[...new Set(docs.map((d) => d.kind))].join(', ')})`)
}

if (problems.length > 0) {
  for (const line of problems) console.error(line)
  console.error(`${problems.length} problem(s) in deploy/k8s`)
  process.exit(1)
}
console.log(`deploy/k8s: ${validated} documents valid against the Kubernetes and cert-manager schemas`)
