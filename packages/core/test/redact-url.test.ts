import { describe, expect, it } from 'vitest';
import { redactUrl } from '../src/index.js';

describe('redactUrl', () => {
  it('masks the password of the user part and secret query values, and keeps the rest', () => {
    expect(redactUrl('redis://default:s3cr3t@127.0.0.1:6379/2')).toBe('redis://default:***@127.0.0.1:6379/2');
    expect(redactUrl('redis://127.0.0.1:6379?password=s3cr3t&db=2')).toBe('redis://127.0.0.1:6379?password=***&db=2');
    expect(redactUrl('ws://user:pw@127.0.0.1:1/ws?token=s3cretTOK&x=1')).toBe('ws://user:***@127.0.0.1:1/ws?token=***&x=1');
    expect(redactUrl('https://h/?client_secret=abc&name=x')).toBe('https://h/?client_secret=***&name=x');
    expect(redactUrl('redis://[::1]:6379/0')).toBe('redis://[::1]:6379/0');
    expect(redactUrl('redis://user@h:6379/0')).toBe('redis://user@h:6379/0');
    // A secret parameter anywhere in the query, its name in any case.
    expect(redactUrl('redis://h:6379/0?db=2&Password=s3cret&AUTH_TOKEN=t0k&x=1')).toBe('redis://h:6379/0?db=2&Password=***&AUTH_TOKEN=***&x=1');
  });

  it('masks a password the URL parser misreads or refuses: unescaped / ? # @, or starting like a port', () => {
    for (const url of ['redis://:Ab/Cd+eF=@127.0.0.1:6379', 'redis://:Ab#Cd@127.0.0.1:6379', 'redis://:Ab?Cd@127.0.0.1:6379', 'redis://u:Ab@Cd@127.0.0.1:6379/0']) {
      expect(redactUrl(url)).toMatch(/^redis:\/\/u?:\*\*\*@127\.0\.0\.1:6379/);
      expect(redactUrl(url)).not.toMatch(/Ab|Cd/);
    }
    for (const [url, shown] of [
      ['redis://default:#Sup3rSecret@redis.example.com:6379/0', 'redis://default:***@redis.example.com:6379/0'],
      ['redis://default:/k3yBase64+x@redis.example.com:6379', 'redis://default:***@redis.example.com:6379'],
      ['redis://default:?hunter2@redis.example.com:6379', 'redis://default:***@redis.example.com:6379'],
      ['redis://default:8080/abc@redis.example.com:6379', 'redis://default:***@redis.example.com:6379'],
      ['rediss://admin:1234#xyz@[::1]:6380/2', 'rediss://admin:***@[::1]:6380/2'],
      // Up to the last '@': the parser took 'Cd' for the host and the rest for the path.
      ['redis://:Ab@Cd/x@127.0.0.1:6379', 'redis://:***@127.0.0.1:6379'],
    ] as const) {
      expect(redactUrl(url)).toBe(shown);
    }
  });

  it('masks a secret parameter whose value holds an @, also with a percent-encoded name', () => {
    expect(redactUrl('redis://127.0.0.1:6379/0?password=abc@SECRET')).toBe('redis://127.0.0.1:6379/0?password=***');
    expect(redactUrl('redis://h/0?pass%77ord=s3cret')).toBe('redis://h/0?pass%77ord=***');
    // A name that does not decode is matched as written.
    expect(redactUrl('redis://h/0?token%=s3cret&db=1')).toBe('redis://h/0?token%=***&db=1');
    // Both at once: the parser's reading is not trusted (an '@' in the query), and the parameter's
    // name must be decoded to be seen as a password. Its value's tail once came out as the host.
    const shown = redactUrl('redis://:pw@127.0.0.1:6379/0?pass%77ord=first@TAIL');
    expect(shown).toBe('redis://:***@127.0.0.1:6379/0?pass%77ord=***');
  });

  it('masks a URL without scheme://, as ioredis takes it', () => {
    expect(redactUrl('user:s3cret@h:6379')).toBe('user:***@h:6379');
    expect(redactUrl('//:s3cret@h:6379')).toBe('//:***@h:6379');
  });

  it('errs on the side of masking: a plain parameter value with an @ garbles the host, never shows a password', () => {
    const shown = redactUrl('redis://:pw@h:6379/0?name=a@b');
    expect(shown).not.toContain('pw');
    expect(shown).toContain('***');
    // Without a password there, nothing is masked: the user name stays.
    expect(redactUrl('redis://user@h/0?name=a@b')).toBe('redis://user@h/0?name=a@b');
  });
});
