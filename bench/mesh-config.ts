// The mesh's settings for a benchmark or profiling run: a throwaway home, every service on a free
// loopback port, quiet logs, PostgreSQL when DATABASE_URL is set (embedded PGlite otherwise).
import { addressVariable, type Config, loadConfig, SERVICE_NAMES } from '../services/runtime/config.ts'

export function benchConfig(home: string, settings: Record<string, string> = {}): Config {
  return loadConfig({
    CLOUDPAY_HOME: home,
    CLOUDPAY_TRACE_FILE: 'off',
    CLOUDPAY_LOG_LEVEL: 'warn',
    // Each load worker pays for thousands of orders from one payer account.
    CLOUDPAY_OPENING_BALANCE_MAX_MINOR: '1000000000',
    // The pipe fan-out opens up to 10,000 streams of one device with one instance certificate.
    CLOUDPAY_MAX_STREAMS_PER_CALLER: '100000',
    ...Object.fromEntries(SERVICE_NAMES.map((name) => [addressVariable(name), '127.0.0.1:0'])),
    ...(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {}),
    ...settings,
  })
}
