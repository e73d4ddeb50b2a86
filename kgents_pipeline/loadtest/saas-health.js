// k6 load test for the kgents SaaS health endpoint: 100 req/s sustained, p95 < 500 ms.
//
// Environment (set by kgents_pipeline.loadtest.runner; each has a default for a hand run):
//   KGENTS_TARGET_URL   base URL of the service        (default http://127.0.0.1:8080)
//   KGENTS_RATE         iterations (requests) per second (default 100)
//   KGENTS_DURATION     test duration, k6 syntax         (default 30s)
//   KGENTS_AUTH_HEADER  full Authorization header value  (optional; never logged)
//   KGENTS_SUMMARY_PATH where handleSummary writes JSON   (default summary.json)
import http from 'k6/http';
import { check } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';

const BASE = (__ENV.KGENTS_TARGET_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const RATE = parseInt(__ENV.KGENTS_RATE || '100', 10);
const DURATION = __ENV.KGENTS_DURATION || '30s';
const AUTH = __ENV.KGENTS_AUTH_HEADER || '';
const SUMMARY_PATH = __ENV.KGENTS_SUMMARY_PATH || 'summary.json';

// Rate of failed health checks: non-200, non-JSON, or a status other than healthy/ok.
// (In k6's summary a Rate's `passes` counts the non-zero samples, i.e. the errors.)
export const errors = new Rate('errors');
// Duration of health checks that returned 200; refused connections never land here.
export const healthCheckDuration = new Trend('health_check_duration', true);
// Answers that say they come from the bundled demo target (`"demo": true`): whatever URL it was
// reached by, such a run is a rehearsal, never launch evidence.
export const demoResponses = new Counter('demo_target_responses');

export const options = {
  scenarios: {
    health: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: Math.max(10, Math.ceil(RATE / 5)),
      maxVUs: Math.max(50, RATE * 2),
      gracefulStop: '5s',
    },
  },
  thresholds: {
    // Successful requests only: a refused connection reports 0 ms and would flatter p95.
    'http_req_duration{expected_response:true}': ['p(95)<500'],
    errors: ['rate<0.01'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'count'],
  discardResponseBodies: false,
  noConnectionReuse: false,
};

export default function () {
  const params = { tags: { name: 'health_saas' }, timeout: '10s' };
  if (AUTH) {
    params.headers = { Authorization: AUTH };
  }
  const res = http.get(`${BASE}/health/saas`, params);
  let body = null;
  try {
    body = res.json();
  } catch (_) {
    body = null;
  }
  const ok = check(res, {
    'status is 200': (r) => r.status === 200,
    'body reports healthy': () => body !== null && (body.status === 'healthy' || body.status === 'ok'),
  });
  errors.add(!ok);
  if (body !== null && body.demo === true) {
    demoResponses.add(1);
  }
  if (res.status === 200) {
    healthCheckDuration.add(res.timings.duration);
  }
}

export function handleSummary(data) {
  const out = {};
  out[SUMMARY_PATH] = JSON.stringify(data, null, 1);
  return out;
}
