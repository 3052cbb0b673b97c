// Configuration errors name the variable and the rule, and never echo an unbounded value.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ConfigError, DEFAULT_PORTS, loadConfig, SERVICE_NAMES } from '../../services/runtime/config.ts'

test('every variable is validated, and the error names it', () => {
  const bad: Record<string, string> = {
    CLOUDPAY_APP_SERVICE_ADDR: '127.0.0.1:99999',
    CLOUDPAY_ACCOUNT_MANAGEMENT_ADDR: 'no-port',
    CLOUDPAY_LOG_LEVEL: 'verbose',
    CLOUDPAY_ORDER_TTL_MS: '1.5',
    CLOUDPAY_RETRY_MAX_MS: '-3',
    CLOUDPAY_LOGIN_TTL_MS: '12abc',
    CLOUDPAY_PLATFORM_IDS: 'alpha pay',
    CLOUDPAY_OPENING_BALANCE_MAX_MINOR: '1e3',
    CLOUDPAY_IDEMPOTENCY_RETENTION_MS: '0',
    CLOUDPAY_RETENTION_INTERVAL_MS: 'soon',
    CLOUDPAY_TOMBSTONE_RETENTION_MS: '60000',
    CLOUDPAY_OUTBOX_LEASE_MS: '0',
    CLOUDPAY_OUTBOX_MAX_ATTEMPTS: 'many',
    CLOUDPAY_SEALING_KEY_ROTATION_MS: '0',
    CLOUDPAY_SEALING_KEY_GRACE_MS: '-1',
    CLOUDPAY_MAX_TERMINALS_PER_ACCOUNT: '1000',
    CLOUDPAY_CLAIM_GESTURES: 'tap,wink',
    CLOUDPAY_PUSH_RELAY_ADDR: 'relay',
    CLOUDPAY_PAYMENT_MANAGEMENT_ADDR: 'dns:///payment-management',
    CLOUDPAY_INSTANCE_EVENTS_ADDR: 'ipv4:127.0.0.1:1,127.0.0.1',
    CLOUDPAY_PAYMENT_PLATFORM_ADDR: 'dns://resolver/payment-platform:15054',
    CLOUDPAY_APP_SERVICE_LISTEN: 'dns:///app-service:15055',
    CLOUDPAY_ACCOUNT_MANAGEMENT_LISTEN: '0.0.0.0:70000',
    CLOUDPAY_PUSH_RELAY_HEALTH_LISTEN: '8081',
    CLOUDPAY_DRAIN_DELAY_MS: '-1',
    CLOUDPAY_DB_POOL_SIZE: '0',
    CLOUDPAY_DB_CONNECT_TIMEOUT_MS: '5s',
    CLOUDPAY_DB_STATEMENT_TIMEOUT_MS: '0',
    CLOUDPAY_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: '1.5',
    CLOUDPAY_DB_PREPARED_STATEMENTS: '-1',
  }
  for (const [name, value] of Object.entries(bad)) {
    assert.throws(() => loadConfig({ [name]: value }), (error: unknown) => error instanceof ConfigError && error.message.startsWith(name), `${name}=${value}`)
  }
  assert.throws(() => loadConfig({ CLOUDPAY_DB_POOL_SIZE: '5000' }), /CLOUDPAY_DB_POOL_SIZE must be at most 1000/)
  assert.throws(() => loadConfig({ CLOUDPAY_DB_PREPARED_STATEMENTS: '20000' }), /CLOUDPAY_DB_PREPARED_STATEMENTS must be at most 10000/)
  assert.equal(loadConfig({ CLOUDPAY_DB_PREPARED_STATEMENTS: '0' }).database.preparedStatements, 0)
  const long = 'x'.repeat(10_000)
  assert.throws(() => loadConfig({ CLOUDPAY_LOG_LEVEL: long }), (error: unknown) => error instanceof ConfigError && error.message.length < 300)
})

test('the defaults and good values load', () => {
  const config = loadConfig({ CLOUDPAY_APP_SERVICE_ADDR: '[::1]:0', CLOUDPAY_LOG_LEVEL: 'debug', CLOUDPAY_PLATFORM_IDS: 'alphapay, betapay' })
  assert.equal(config.addresses['app-service'], '[::1]:0')
  assert.equal(config.logLevel, 'debug')
  assert.deepEqual(config.payment.platformIds, ['alphapay', 'betapay'])
  assert.equal(config.payment.outboxLeaseMs, 30_000)
  assert.equal(loadConfig({ CLOUDPAY_OUTBOX_LEASE_MS: '5000' }).payment.outboxLeaseMs, 5_000)
  assert.equal(config.payment.sealingKeyRotationMs, 24 * 3_600_000)
  assert.equal(config.payment.sealingKeyGraceMs, 3_600_000)
  assert.equal(config.addresses['push-relay'], '127.0.0.1:15056')
  assert.deepEqual(config.terminals, { maxPerAccount: 10, claimGestures: ['tap', 'slide', 'lift'] })
  assert.deepEqual(loadConfig({ CLOUDPAY_CLAIM_GESTURES: ' Tap,lift ', CLOUDPAY_MAX_TERMINALS_PER_ACCOUNT: '3' }).terminals, { maxPerAccount: 3, claimGestures: ['tap', 'lift'] })
})

test('peers are addressed by a name or a list naming every replica; each replica listens on its own address', () => {
  const config = loadConfig({
    CLOUDPAY_ACCOUNT_MANAGEMENT_ADDR: 'dns:///account-management:15051',
    CLOUDPAY_ACCOUNT_MANAGEMENT_LISTEN: '0.0.0.0:15051',
    CLOUDPAY_ACCOUNT_MANAGEMENT_HEALTH_LISTEN: '0.0.0.0:8081',
    CLOUDPAY_PAYMENT_MANAGEMENT_ADDR: 'ipv4:127.0.0.1:41001,127.0.0.1:41002',
    CLOUDPAY_INSTANCE_EVENTS_ADDR: 'ipv6:[::1]:41003,[::1]:41004',
    CLOUDPAY_DRAIN_DELAY_MS: '0',
    CLOUDPAY_DB_POOL_SIZE: '4',
    CLOUDPAY_DB_STATEMENT_TIMEOUT_MS: '5000',
  })
  assert.equal(config.addresses['account-management'], 'dns:///account-management:15051')
  assert.equal(config.listen['account-management'], '0.0.0.0:15051')
  assert.equal(config.healthListen['account-management'], '0.0.0.0:8081')
  assert.equal(config.addresses['payment-management'], 'ipv4:127.0.0.1:41001,127.0.0.1:41002')
  assert.equal(config.addresses['instance-events'], 'ipv6:[::1]:41003,[::1]:41004')
  // Unset: the service listens on its address (checked when it starts), and has no probe port.
  assert.equal(config.listen['app-service'], undefined)
  assert.equal(config.healthListen['app-service'], undefined)
  assert.equal(config.drainDelayMs, 0)
  assert.deepEqual(config.database, { poolSize: 4, connectTimeoutMs: 5_000, statementTimeoutMs: 5_000, idleInTransactionTimeoutMs: 60_000, preparedStatements: 128 })
  assert.equal(loadConfig({}).database.poolSize, 10)
  assert.equal(loadConfig({ CLOUDPAY_DRAIN_DELAY_MS: '5000' }).drainDelayMs, 5_000)
})

test("every default port lies below every kernel's ephemeral range, where a closed outgoing connection holds its port for 60 s", () => {
  // Linux 32768-60999; Windows and macOS 49152-65535.
  for (const name of SERVICE_NAMES) {
    assert.ok(DEFAULT_PORTS[name] > 1023 && DEFAULT_PORTS[name] < 32768, `${name}: ${DEFAULT_PORTS[name]}`)
    assert.equal(loadConfig({}).addresses[name], `127.0.0.1:${DEFAULT_PORTS[name]}`)
  }
})
