"""Credential forms for the redaction tests: each is a line as it appears in a real file, the secret in it,
and the kind of file it lives in. Values are made up (seeded random text in each vendor's format)."""

from __future__ import annotations

import random
import string
from typing import NamedTuple

_RNG = random.Random(11)
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"


def rnd(n: int, alphabet: str = ALNUM) -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(n))


class Form(NamedTuple):
    name: str
    file: str  # the ordinary file it is planted in
    line: str  # the line, with {s} where the secret goes
    secret: str


def _pem(kind: str) -> str:
    body = "\n".join(rnd(64, B64) for _ in range(6))
    return f"-----BEGIN {kind}-----\n{body}\n{rnd(20, B64)}==\n-----END {kind}-----"


FORMS = [
    # Cloud providers
    Form("AWS access key id", "config.ini", "aws_access_key_id = {s}", "AKIA" + rnd(16, string.ascii_uppercase + "234567")),
    Form("AWS secret access key (INI)", "config.ini", "aws_secret_access_key = {s}", rnd(40, B64)),
    Form("AWS session token (YAML)", "config.yaml", "aws_session_token: {s}", "FwoGZXIvYXdzE" + rnd(60, B64)),
    Form("Azure storage connection string", "appsettings.json",
         '"Storage": "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={s};EndpointSuffix=core.windows.net",',
         rnd(86, B64) + "=="),
    Form("GCP service-account private_key (JSON)", "deploy.json",
         '"private_key": "{s}",', _pem("PRIVATE KEY").replace("\n", "\\n")),
    Form("Google API key", "maps.js", "const mapsKey = '{s}';", "AIza" + rnd(35, ALNUM + "-_")),
    Form("Google OAuth client secret", "oauth.py", 'CLIENT = {{"id": "123.apps", "web_secret": "{s}"}}',
         "GOCSPX-" + rnd(28, ALNUM + "-_")),
    # Code hosts and package registries
    Form("GitHub classic token", "deploy.sh", "git clone https://x-access-token:{s}@github.com/acme/app.git",
         "ghp_" + rnd(36)),
    Form("GitHub OAuth token", "ci.yml", "      GH_OAUTH: {s}", "gho_" + rnd(36)),
    Form("GitHub fine-grained token", "notes.md", "Use the token {s} for the mirror job.", "github_pat_" + rnd(82, ALNUM + "_")),
    Form("GitLab personal token", "ci.yml", "      GITLAB_TOKEN: {s}", "glpat-" + rnd(20, ALNUM + "-_")),
    Form("npm token (.npmrc line)", "README.txt", "//registry.npmjs.org/:_authToken={s}", "npm_" + rnd(36)),
    Form("PyPI token", "release.sh", "twine upload -u __token__ -p {s} dist/*", "pypi-AgEIcHlwaS5vcmc" + rnd(80, ALNUM + "-_")),
    Form("Hugging Face token", "train.py", "login('{s}')", "hf_" + rnd(34)),
    # SaaS APIs
    Form("Slack bot token", "bot.py", 'client = WebClient("{s}")',
         "xoxb-" + rnd(12, string.digits) + "-" + rnd(13, string.digits) + "-" + rnd(24)),
    Form("Slack webhook", "alerts.yaml", "webhook: {s}",
         "https://hooks.slack.com/services/T" + rnd(8, string.ascii_uppercase + string.digits) + "/B"
         + rnd(8, string.ascii_uppercase + string.digits) + "/" + rnd(24)),
    Form("Stripe live secret key", "billing.rb", "Stripe.api_key = '{s}'", "sk_live_" + rnd(24)),
    Form("Stripe restricted key", "billing.go", 'stripeKey := "{s}"', "rk_live_" + rnd(24)),
    Form("Twilio API key", "sms.py", 'TWILIO_KEY_SID = "{s}"', "SK" + rnd(32, HEX)),
    Form("Twilio account SID", "sms.py", 'account = "{s}"', "AC" + rnd(32, HEX)),
    Form("SendGrid key", "mail.js", "sgMail.setApiKey('{s}');", "SG." + rnd(22, ALNUM + "-_") + "." + rnd(43, ALNUM + "-_")),
    Form("Mailchimp key", "newsletter.php", "$mc = new Mailchimp('{s}');", rnd(32, HEX) + "-us14"),
    Form("OpenAI legacy key", "ai.py", 'openai.api_key = "{s}"', "sk-" + rnd(20) + "T3BlbkFJ" + rnd(20)),
    Form("OpenAI project key (Python)", "settings.py", 'OPENAI_API_KEY = "{s}"', "sk-proj-" + rnd(64, ALNUM + "-_")),
    Form("Anthropic key", "agent.ts", "const anthropic = new Anthropic({{ apiKey: '{s}' }});",
         "sk-ant-api03-" + rnd(93, ALNUM + "-_") + "AA"),
    Form("Discord bot token", "bot.js", "client.login('{s}');",
         "M" + rnd(25, ALNUM) + "." + rnd(6, ALNUM) + "." + rnd(27, ALNUM + "-_")),
    Form("Telegram bot token", "tg.py", "bot = Bot('{s}')", rnd(10, string.digits) + ":AA" + rnd(33, ALNUM + "-_")),
    Form("JWT", "api.http", "Cookie: session={s}",
         "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ." + rnd(43, ALNUM + "-_")),
    Form("Bearer token header", "api.http", "Authorization: Bearer {s}", rnd(40, ALNUM + "-_.")),
    Form("Basic auth header", "curl.sh", "curl -H 'Authorization: Basic {s}' https://api.acme.io", rnd(28, B64) + "="),
    Form("API key header", "curl.sh", 'curl -H "X-Api-Key: {s}" https://api.acme.io/v1', rnd(32, HEX)),
    # Private keys
    Form("RSA private key", "deploy_notes.txt", "{s}", _pem("RSA PRIVATE KEY")),
    Form("OpenSSH private key", "server_setup.md", "{s}", _pem("OPENSSH PRIVATE KEY")),
    Form("EC private key", "tls_notes.txt", "{s}", _pem("EC PRIVATE KEY")),
    Form("PGP private key block", "signing.txt", "{s}", _pem("PGP PRIVATE KEY BLOCK")),
    # Connection strings
    Form("PostgreSQL URL", "settings.py", 'DATABASE_URL = "postgres://admin:{s}@db.internal:5432/app"', rnd(16)),
    Form("MySQL URL", "config.yaml", "url: mysql://root:{s}@127.0.0.1:3306/shop", rnd(14)),
    Form("MongoDB SRV URL", "db.js", "mongoose.connect('mongodb+srv://app:{s}@cluster0.mongodb.net/prod');", rnd(18)),
    Form("Redis URL", "worker.py", "broker = 'redis://default:{s}@cache:6379/0'", rnd(20)),
    Form("AMQP URL", "celery.py", "BROKER_URL = 'amqp://rabbit:{s}@mq:5672//'", rnd(15)),
    Form("ADO.NET connection string", "Web.config.txt",
         "Server=sql01;Database=app;User Id=sa;Password={s};", rnd(12) + "!"),
    Form("JDBC URL with password", "application.properties",
         "spring.datasource.url=jdbc:postgresql://db:5432/app?user=app&password={s}", rnd(14)),
    # Secret-named assignments in every syntax
    Form("Python *_PASSWORD", "settings.py", 'DATABASE_PASSWORD = "{s}"', rnd(14)),
    Form("Python SECRET_KEY", "settings.py", "SECRET_KEY = '{s}'", "django-insecure-" + rnd(40, ALNUM + "!@#%^&*(-_=+)")),
    Form("JavaScript token const", "app.js", 'const apiToken = "{s}";', rnd(24)),
    Form("JavaScript object secret", "app.js", "const auth = {{ clientSecret: '{s}' }};", rnd(30)),
    Form("Go := key", "main.go", 'apiKey := "{s}"', rnd(28)),
    Form("YAML *_password", "config.yaml", "db_password: {s}", rnd(16)),
    Form("YAML quoted token", "config.yaml", 'github_token: "{s}"', rnd(30)),
    Form("TOML api_key", "pyproject.toml", 'api_key = "{s}"', rnd(22)),
    Form("INI password", "config.ini", "password = {s}", rnd(13)),
    Form("Java properties password", "application.properties", "spring.datasource.password={s}", rnd(15)),
    Form("shell export *_PASSWORD", "deploy.sh", "export REDIS_PASSWORD={s}", rnd(16)),
    Form("shell quoted *_SECRET", "deploy.sh", "export SLACK_SIGNING_SECRET='{s}'", rnd(32, HEX)),
    Form("docker-compose env list", "docker-compose.yml", "      - POSTGRES_PASSWORD={s}", rnd(18)),
    Form("PHP define", "db.php", "define('DB_PASSWORD', '{s}');", rnd(14)),
    Form("XML element", "web.xml", "<password>{s}</password>", rnd(16)),
    Form("JSON *_token", "appsettings.json", '"refresh_token": "{s}",', rnd(40)),
    Form("Terraform secret", "main.tf", '  client_secret = "{s}"', rnd(34)),
    Form("Kubernetes Secret data", "secret-values.yaml", "  password: {s}", rnd(24, B64) + "=="),
    Form("high-entropy signing key", "crypto.py", 'signing_key = "{s}"', rnd(44, B64)),
    Form("high-entropy hex encryption key", "crypto.py", 'encryption_key = "{s}"', rnd(64, HEX)),
    Form(".env line in content", "(content)", "STRIPE_WEBHOOK_SECRET={s}", "whsec_" + rnd(32)),
    Form(".env *_TOKEN in content", "(content)", "SENTRY_AUTH_TOKEN={s}", rnd(64, HEX)),
]


def planted() -> dict[str, str]:
    """Each ordinary file's text: for every form, an ordinary line ``ORDINARY-<n> …`` then the secret's line."""
    files: dict[str, list[str]] = {}
    for n, form in enumerate(FORMS):
        files.setdefault(form.file, []).extend([f"# ORDINARY-{n:03d} the build passes on friday",
                                                form.line.format(s=form.secret)])
    return {name: "\n".join(lines) + "\n" for name, lines in files.items()}
