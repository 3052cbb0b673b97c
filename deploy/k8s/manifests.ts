// The Kubernetes manifests, written from typed models (kubernetes-models: a misspelt field fails
// the type-check; validate() checks them against the Kubernetes OpenAPI schemas) and committed as
// YAML under deploy/k8s: `node --import tsx deploy/k8s/manifests.ts --write` after a change;
// scripts/k8s-validate.ts (CI) requires the committed files to be what this writes.
//
// One shape per service: a headless Service (the name resolves to every ready pod, which the
// peers' dns:/// targets balance round-robin), a Deployment (rolling with no pod unavailable,
// probes on the plaintext health port, a drain before stopping), a PodDisruptionBudget.
import { Certificate } from '@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate'
import { Issuer } from '@kubernetes-models/cert-manager/cert-manager.io/v1/Issuer'
import { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget'
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap'
import { Service } from 'kubernetes-models/v1/Service'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { addressVariable, DEFAULT_PORTS, healthListenVariable, listenVariable, SERVICE_NAMES, type ServiceName } from '../../services/runtime/config.ts'
import { spiffeUri } from '../../services/runtime/identity.ts'

const PROBE_PORT = 8081
const TLS_DIR = '/var/run/cloudpay/tls'
/**
 * Stopping a pod: the preStop sleep first (Kubernetes takes the terminating pod out of the
 * headless Service's DNS answers and endpoints meanwhile, while it still serves everything), then
 * SIGTERM: health NOT_SERVING for DRAIN_MS with calls still accepted, then in-flight calls get
 * GRACE_MS. Calls that still meet a closing connection are retried by the clients (UNAVAILABLE).
 */
const PRE_STOP_SECONDS = 5
const DRAIN_MS = 2_000
/** In-flight calls after the drain: a call's deadline is 10 s. */
const GRACE_MS = 12_000

/**
 * Measured here (npm run cluster, scripts/cluster-failover.ts): a replica idles at 95-130 MiB RSS
 * and spends ~0.6-0.9 s of CPU to start; the demo costs each a few tens of ms. The request is the
 * idle footprint with room; the memory limit leaves V8 (capped below it) room for bursts of
 * subscribers; CPU is limited to one core (Node runs JavaScript on one thread).
 */
const RESOURCES = { requests: { cpu: '100m', memory: '192Mi' }, limits: { cpu: '1', memory: '512Mi' } }
const NODE_OPTIONS = '--max-old-space-size=384'

const labelsOf = (name: ServiceName) => ({ 'app.kubernetes.io/name': name, 'app.kubernetes.io/part-of': 'cloudpay' })
const selectorOf = (name: ServiceName) => ({ 'app.kubernetes.io/name': name })
const tlsSecretOf = (name: ServiceName) => `${name}-tls`

/** Every peer by a name resolving to all its ready replicas (short names: same namespace). */
function peers(): ConfigMap {
  return new ConfigMap({
    metadata: { name: 'cloudpay-peers', labels: { 'app.kubernetes.io/part-of': 'cloudpay' } },
    data: Object.fromEntries(SERVICE_NAMES.map((name) => [addressVariable(name), `dns:///${name}:${DEFAULT_PORTS[name]}`])),
  })
}

/** Settings every replica shares; an overlay patches what differs per environment (OTEL endpoint). */
function settings(): ConfigMap {
  return new ConfigMap({
    metadata: { name: 'cloudpay-settings', labels: { 'app.kubernetes.io/part-of': 'cloudpay' } },
    data: {
      CLOUDPAY_LOG_FORMAT: 'json',
      CLOUDPAY_LOG_LEVEL: 'info',
      // Spans go to the collector; no local span file in a container.
      CLOUDPAY_TRACE_FILE: 'off',
      CLOUDPAY_DRAIN_DELAY_MS: String(DRAIN_MS),
      CLOUDPAY_SHUTDOWN_GRACE_MS: String(GRACE_MS),
      CLOUDPAY_DB_POOL_SIZE: '10',
      CLOUDPAY_DB_CONNECT_TIMEOUT_MS: '5000',
      CLOUDPAY_DB_STATEMENT_TIMEOUT_MS: '30000',
      CLOUDPAY_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: '60000',
      // 0 behind PgBouncer in transaction mode before 1.21, which cannot keep prepared statements.
      CLOUDPAY_DB_PREPARED_STATEMENTS: '128',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector.observability:4318',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    },
  })
}

function service(name: ServiceName): Service {
  return new Service({
    metadata: { name, labels: labelsOf(name) },
    spec: {
      // Headless: DNS answers with every ready pod, and the clients balance (a ClusterIP would pin
      // each long-lived HTTP/2 connection, and so all its calls, to one pod).
      clusterIP: 'None',
      selector: selectorOf(name),
      ports: [{ name: 'grpc', port: DEFAULT_PORTS[name], targetPort: 'grpc', appProtocol: 'grpc' }],
    },
  })
}

function deployment(name: ServiceName): Deployment {
  const port = DEFAULT_PORTS[name]
  const probe = (service: string) => ({ grpc: { port: PROBE_PORT, service } })
  return new Deployment({
    metadata: { name, labels: labelsOf(name) },
    spec: {
      replicas: 2,
      revisionHistoryLimit: 5,
      selector: { matchLabels: selectorOf(name) },
      // A new pod is ready before an old one stops: capacity never drops during a rollout.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      minReadySeconds: 5,
      template: {
        metadata: { labels: labelsOf(name) },
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: PRE_STOP_SECONDS + Math.ceil((DRAIN_MS + GRACE_MS) / 1000) + 3,
          securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } },
          topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: selectorOf(name) } }],
          containers: [
            {
              name,
              image: 'cloudpay',
              args: [name],
              ports: [
                { name: 'grpc', containerPort: port, protocol: 'TCP' },
                { name: 'probe', containerPort: PROBE_PORT, protocol: 'TCP' },
              ],
              envFrom: [{ configMapRef: { name: 'cloudpay-peers' } }, { configMapRef: { name: 'cloudpay-settings' } }],
              env: [
                { name: listenVariable(name), value: `0.0.0.0:${port}` },
                { name: healthListenVariable(name), value: `0.0.0.0:${PROBE_PORT}` },
                { name: 'CLOUDPAY_TLS_CA', value: `${TLS_DIR}/ca.crt` },
                { name: 'CLOUDPAY_TLS_CERT', value: `${TLS_DIR}/tls.crt` },
                { name: 'CLOUDPAY_TLS_KEY', value: `${TLS_DIR}/tls.key` },
                { name: 'DATABASE_URL', valueFrom: { secretKeyRef: { name: 'cloudpay-database', key: 'url' } } },
                { name: 'CLOUDPAY_DATA_KEY', valueFrom: { secretKeyRef: { name: 'cloudpay-data-key', key: 'key' } } },
                { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                { name: 'OTEL_RESOURCE_ATTRIBUTES', value: 'k8s.pod.name=$(POD_NAME)' },
                { name: 'NODE_OPTIONS', value: NODE_OPTIONS },
              ],
              resources: RESOURCES,
              // The kubelet cannot present a client certificate: probes use the plaintext port,
              // which serves Health/Check only. '' is readiness (NOT_SERVING while the database is
              // away or the pod drains); 'liveness' fails only if the process stops answering.
              startupProbe: { ...probe('liveness'), periodSeconds: 1, failureThreshold: 30 },
              readinessProbe: { ...probe(''), periodSeconds: 2, failureThreshold: 1, successThreshold: 1 },
              livenessProbe: { ...probe('liveness'), periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 },
              lifecycle: { preStop: { sleep: { seconds: PRE_STOP_SECONDS } } },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              volumeMounts: [
                { name: 'tls', mountPath: TLS_DIR, readOnly: true },
                { name: 'tmp', mountPath: '/tmp' },
              ],
            },
          ],
          volumes: [
            // cert-manager's layout (ca.crt, tls.crt, tls.key); renewed files are read without a restart.
            { name: 'tls', secret: { secretName: tlsSecretOf(name), defaultMode: 0o440 } },
            { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
          ],
        },
      },
    },
  })
}

function disruptionBudget(name: ServiceName): PodDisruptionBudget {
  return new PodDisruptionBudget({
    metadata: { name, labels: labelsOf(name) },
    spec: { maxUnavailable: 1, selector: { matchLabels: selectorOf(name) } },
  })
}

/** The example overlay's identities: one certificate per service from a CA issuer (cert-manager). */
function certificate(name: ServiceName): Certificate {
  return new Certificate({
    metadata: { name: tlsSecretOf(name), labels: labelsOf(name) },
    spec: {
      secretName: tlsSecretOf(name),
      issuerRef: { name: 'cloudpay-ca', kind: 'Issuer' },
      // The mesh's identity (exactly one SPIFFE URI SAN) and the name peers dial (TLS checks it).
      uris: [spiffeUri({ role: 'service', id: name })],
      dnsNames: [name],
      usages: ['server auth', 'client auth', 'digital signature'],
      duration: '720h',
      renewBefore: '240h',
      privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
    },
  })
}

function issuer(): Issuer {
  return new Issuer({
    metadata: { name: 'cloudpay-ca', labels: { 'app.kubernetes.io/part-of': 'cloudpay' } },
    // The mesh CA's certificate and key, created once by the operator (README "Production").
    spec: { ca: { secretName: 'cloudpay-ca' } },
  })
}

const HEADER = '# Generated by deploy/k8s/manifests.ts (node --import tsx deploy/k8s/manifests.ts --write); do not edit.\n'

function documents(models: readonly { validate(): void; toJSON(): unknown }[]): string {
  for (const model of models) model.validate()
  return HEADER + models.map((m) => stringify(m.toJSON(), { lineWidth: 0 })).join('---\n')
}

/** Every generated file, by its path under deploy/k8s. */
export function manifests(): Map<string, string> {
  const files = new Map<string, string>()
  files.set('base/config.yaml', documents([peers(), settings()]))
  for (const name of SERVICE_NAMES) files.set(`base/${name}.yaml`, documents([service(name), deployment(name), disruptionBudget(name)]))
  files.set('overlays/example/certificates.yaml', documents([issuer(), ...SERVICE_NAMES.map(certificate)]))
  return files
}

export const K8S_DIR = import.meta.dirname

if (process.argv.includes('--write')) {
  for (const [path, text] of manifests()) writeFileSync(join(K8S_DIR, path), text)
}
