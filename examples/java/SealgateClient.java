/*
 * SealgateClient — a sealgate REST client on java.net.http alone (Java 17, no
 * dependencies). It walks the API a back end uses:
 *
 *   1. POST /api/v1/oauth/token        an access token (OAuth 2.0 client credentials)
 *   2. POST /api/v1/seals?format=pades  seal the first PDF, with a visible stamp on page 1
 *   3. POST /api/v1/verifications      verify the sealed PDF (public, no credentials)
 *   4. POST /api/v1/jobs               submit every PDF as one batch job (multipart:
 *                                      options first, then one "document" part per file)
 *   5. GET  /api/v1/jobs/{id}          poll until the job has ended
 *   6. GET  /api/v1/jobs/{id}/results.zip, /documents/1   download the results (and
 *                                      check document 1's SHA-256 against its headers and the ZIP)
 *   7. POST /api/v1/verifications      verify every result in the ZIP
 *   8. DELETE /api/v1/jobs/{id}        purge the job's results on the server
 *
 * Usage:
 *   javac -d out SealgateClient.java
 *   java -cp out SealgateClient [options] FILE.pdf [FILE.pdf ...]
 *   (or, without javac: java SealgateClient.java [options] FILE.pdf ...)
 *
 * Options (each also from the environment; an option wins over its variable):
 *   --url URL              SEALGATE_URL            default http://127.0.0.1:8080
 *   --client-id ID         SEALGATE_CLIENT_ID      the process client's id
 *   --client-secret SECRET SEALGATE_CLIENT_SECRET  its secret (prefer the variable:
 *                                                  arguments show in the process list)
 *   --out DIR              SEALGATE_OUT            where results go; default "."
 *   --timeout SECONDS      SEALGATE_TIMEOUT        per HTTP request; default 60
 *   --job-timeout SECONDS  SEALGATE_JOB_TIMEOUT    for the job to end; default 600
 *
 * Each step prints one line ("token: ...", "seal: ...", "verify: ...", "job: ...",
 * "zip: ...", "document: ..."); the last line is "OK" and the exit status 0. Any
 * failure prints "FAILED: ..." — for an API error its HTTP status, problem code and
 * detail — and exits 1 (2 for a usage error). An answer 429 or 503 with Retry-After
 * is retried after the time it names (up to 5 times); a job submission keeps its
 * Idempotency-Key on every retry, so sealgate answers a retry
 * with the job it accepted first. Secrets and tokens are never printed.
 */

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.net.ConnectException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

public final class SealgateClient {

    /** Retries of one request answered 429 or 503 with Retry-After. */
    private static final int MAX_RETRIES = 5;
    /** The longest Retry-After honoured; a longer one fails the request. */
    private static final Duration MAX_RETRY_AFTER = Duration.ofMinutes(2);
    /** Error bodies are read up to this size: enough for any problem document. */
    private static final int MAX_ERROR_BODY = 64 << 10;
    private static final Set<String> JOB_ENDED = Set.of("done", "failed", "cancelled");

    private final URI base;
    private final String clientId;
    private final String clientSecret;
    private final Path out;
    private final Duration timeout;
    private final Duration jobTimeout;
    private final HttpClient http;
    private String token;

    private SealgateClient(URI base, String clientId, String clientSecret, Path out, Duration timeout, Duration jobTimeout) {
        this.base = base;
        this.clientId = clientId;
        this.clientSecret = clientSecret;
        this.out = out;
        this.timeout = timeout;
        this.jobTimeout = jobTimeout;
        this.http = HttpClient.newBuilder()
                .connectTimeout(Duration.ofSeconds(10))
                .followRedirects(HttpClient.Redirect.NEVER)
                .build();
    }

    public static void main(String[] args) {
        SealgateClient client;
        List<Path> files = new ArrayList<>();
        try {
            client = fromArgs(args, files);
        } catch (IllegalArgumentException e) {
            System.err.println("error: " + e.getMessage());
            System.err.println("usage: java SealgateClient [--url URL] [--client-id ID] [--client-secret SECRET] "
                    + "[--out DIR] [--timeout S] [--job-timeout S] FILE.pdf [FILE.pdf ...]");
            System.exit(2);
            return;
        }
        try {
            client.run(files);
            System.out.println("OK");
        } catch (Failure e) {
            System.out.println("FAILED: " + e.getMessage());
            System.exit(1);
        } catch (HttpTimeoutException e) {
            System.out.println("FAILED: timed out: " + e.getMessage());
            System.exit(1);
        } catch (ConnectException e) {
            System.out.println("FAILED: cannot connect to " + client.base + ": " + e.getClass().getSimpleName());
            System.exit(1);
        } catch (IOException | UncheckedIOException e) {
            System.out.println("FAILED: " + e.getClass().getSimpleName() + ": " + e.getMessage());
            System.exit(1);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            System.out.println("FAILED: interrupted");
            System.exit(1);
        }
    }

    /** Reads the options (falling back to the environment) and the files. */
    private static SealgateClient fromArgs(String[] args, List<Path> files) {
        Map<String, String> opt = new LinkedHashMap<>();
        Map<String, String> env = Map.of(
                "--url", "SEALGATE_URL", "--client-id", "SEALGATE_CLIENT_ID",
                "--client-secret", "SEALGATE_CLIENT_SECRET", "--out", "SEALGATE_OUT",
                "--timeout", "SEALGATE_TIMEOUT", "--job-timeout", "SEALGATE_JOB_TIMEOUT");
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (env.containsKey(a)) {
                if (i + 1 == args.length) {
                    throw new IllegalArgumentException(a + " needs a value");
                }
                opt.put(a, args[++i]);
            } else if (a.startsWith("--")) {
                throw new IllegalArgumentException("unknown option " + a);
            } else {
                files.add(Path.of(a));
            }
        }
        env.forEach((o, v) -> {
            String s = System.getenv(v);
            if (!opt.containsKey(o) && s != null && !s.isEmpty()) {
                opt.put(o, s);
            }
        });
        if (files.isEmpty()) {
            throw new IllegalArgumentException("name at least one PDF file");
        }
        for (Path f : files) {
            if (!Files.isRegularFile(f)) {
                throw new IllegalArgumentException(f + " is not a file");
            }
        }
        String id = opt.get("--client-id"), secret = opt.get("--client-secret");
        if (id == null || secret == null) {
            throw new IllegalArgumentException("the client id and secret are needed (--client-id/--client-secret "
                    + "or SEALGATE_CLIENT_ID/SEALGATE_CLIENT_SECRET)");
        }
        URI base = URI.create(opt.getOrDefault("--url", "http://127.0.0.1:8080").replaceAll("/+$", "") + "/");
        if (!"http".equals(base.getScheme()) && !"https".equals(base.getScheme())) {
            throw new IllegalArgumentException("--url must be an http or https URL");
        }
        return new SealgateClient(base, id, secret, Path.of(opt.getOrDefault("--out", ".")),
                seconds(opt, "--timeout", 60), seconds(opt, "--job-timeout", 600));
    }

    private static Duration seconds(Map<String, String> opt, String name, long def) {
        String s = opt.get(name);
        if (s == null) {
            return Duration.ofSeconds(def);
        }
        try {
            long n = Long.parseLong(s);
            if (n > 0) {
                return Duration.ofSeconds(n);
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException(name + " must be a positive number of seconds, not \"" + s + "\"");
    }

    private void run(List<Path> files) throws IOException, InterruptedException {
        Files.createDirectories(out);
        fetchToken();

        Path sealed = sealPAdES(files.get(0));
        verify(sealed);

        Map<String, Object> job = submitJob(files);
        String id = str(job, "id");
        job = awaitJob(id);
        Path zip = downloadZip(id);
        List<Path> entries = unzip(zip, id, files.size());
        checkDocument(id, 1, entries);
        for (Path e : entries) {
            verify(e);
        }
        deleteJob(id);
    }

    // ---- 1. token ---------------------------------------------------------

    /**
     * Gets an access token with the client-credentials grant (RFC 6749 §4.4).
     * The credentials go in the form (client_secret_post), which encodes
     * any character a secret may hold.
     */
    private void fetchToken() throws IOException, InterruptedException {
        String body = "grant_type=client_credentials&client_id=" + form(clientId) + "&client_secret=" + form(clientSecret);
        HttpRequest req = request("api/v1/oauth/token")
                .header("Content-Type", "application/x-www-form-urlencoded")
                .POST(HttpRequest.BodyPublishers.ofString(body))
                .build();
        Map<String, Object> tok = obj(json(send(req, 200)));
        token = str(tok, "access_token");
        System.out.println("token: ok, " + str(tok, "token_type") + ", expires in " + num(tok, "expires_in") + " s");
    }

    // ---- 2. one seal ------------------------------------------------------

    /** Seals file as PAdES with a visible stamp on page 1; writes NAME-sealed.pdf. */
    private Path sealPAdES(Path file) throws IOException, InterruptedException {
        String query = "format=pades&page=1&x=350&y=40&width=200&height=60&reason=" + form("Sealed by the Java example");
        HttpRequest req = authorized("api/v1/seals?" + query)
                .header("Content-Type", "application/pdf")
                .POST(HttpRequest.BodyPublishers.ofFile(file))
                .build();
        HttpResponse<InputStream> resp = send(req, 200);
        Path dst = out.resolve(stem(file) + "-sealed.pdf");
        long n = save(resp, dst);
        System.out.println("seal: " + file + " -> " + dst + " (" + n + " bytes, level "
                + header(resp, "Sealgate-Level") + ", event " + header(resp, "Sealgate-Event")
                + ", evidence index " + header(resp, "Sealgate-Evidence-Index") + ")");
        return dst;
    }

    // ---- 3., 7. verification ---------------------------------------------

    /** Verifies a sealed PDF through the public verification route. */
    private void verify(Path pdf) throws IOException, InterruptedException {
        HttpRequest req = request("api/v1/verifications")
                .header("Content-Type", "application/pdf")
                .POST(HttpRequest.BodyPublishers.ofFile(pdf))
                .build();
        Map<String, Object> rep = obj(json(send(req, 200)));
        boolean valid = Boolean.TRUE.equals(rep.get("valid"));
        String line = pdf.getFileName() + " " + (valid ? "valid" : "NOT valid") + " (" + rep.get("verdict") + ")";
        if (!valid) {
            throw new Failure("verify: " + line);
        }
        System.out.println("verify: " + line);
    }

    // ---- 4. job -----------------------------------------------------------

    /** Submits the files as one job: options first, then one document part each. */
    private Map<String, Object> submitJob(List<Path> files) throws IOException, InterruptedException {
        Multipart mp = new Multipart()
                .field("format", "pades")
                .field("reason", "Sealed in a batch by the Java example");
        for (Path f : files) {
            mp.file("document", f, "application/pdf");
        }
        // One key for every retry of this submission: a server that honours
        // it answers a retry with the job it accepted first, not a second job.
        HttpRequest req = authorized("api/v1/jobs")
                .header("Content-Type", mp.contentType())
                .header("Idempotency-Key", UUID.randomUUID().toString())
                .POST(mp.publisher())
                .build();
        HttpResponse<InputStream> resp = send(req, 202);
        String location = resp.headers().firstValue("Location")
                .orElseThrow(() -> new Failure("job: the answer 202 has no Location header"));
        Map<String, Object> job = obj(json(resp));
        System.out.println("job: " + str(job, "id") + " accepted at " + location + ", "
                + list(job, "documents").size() + " documents, state " + str(job, "state"));
        return job;
    }

    // ---- 5. poll ----------------------------------------------------------

    /**
     * Polls the job until it has ended, backing off from 250 ms to 5 s (or
     * what a Retry-After says), and fails on a job that did not end done or
     * on any document that was not sealed.
     */
    private Map<String, Object> awaitJob(String id) throws IOException, InterruptedException {
        Instant deadline = Instant.now().plus(jobTimeout);
        Duration wait = Duration.ofMillis(250);
        String last = "";
        while (true) {
            HttpResponse<InputStream> resp = send(authorized(jobPath(id)).GET().build(), 200);
            Duration hinted = retryAfter(resp).orElse(null);
            Map<String, Object> job = obj(json(resp));
            String state = str(job, "state");
            Map<String, Object> counts = obj(job.get("counts"));
            String progress = "job: " + id + " " + state + " (" + list(job, "documents").size() + " documents: "
                    + num(counts, "done") + " done, " + num(counts, "failed") + " failed, "
                    + num(counts, "running") + " running, " + num(counts, "queued") + " queued)";
            if (!progress.equals(last)) {
                System.out.println(progress);
                last = progress;
            }
            if (JOB_ENDED.contains(state)) {
                List<String> failures = new ArrayList<>();
                for (Object d : list(job, "documents")) {
                    Map<String, Object> doc = obj(d);
                    if (!"done".equals(doc.get("state"))) {
                        failures.add("document " + num(doc, "n") + " " + doc.get("state") + " " + doc.get("code") + ": " + doc.get("message"));
                    }
                }
                if (!"done".equals(state) || !failures.isEmpty()) {
                    throw new Failure("job " + id + " ended " + state + ": " + String.join("; ", failures));
                }
                return job;
            }
            if (Instant.now().isAfter(deadline)) {
                throw new Failure("job " + id + " has not ended after " + jobTimeout.toSeconds() + " s (" + state + ")");
            }
            Thread.sleep((hinted != null ? hinted : wait).toMillis());
            wait = wait.multipliedBy(2).compareTo(Duration.ofSeconds(5)) > 0 ? Duration.ofSeconds(5) : wait.multipliedBy(2);
        }
    }

    // ---- 6. results -------------------------------------------------------

    /** Downloads the job's results as one ZIP. */
    private Path downloadZip(String id) throws IOException, InterruptedException {
        HttpResponse<InputStream> resp = send(authorized(jobPath(id) + "/results.zip").GET().build(), 200);
        Path dst = out.resolve(id + "-results.zip");
        long n = save(resp, dst);
        System.out.println("zip: " + dst + " (" + n + " bytes)");
        return dst;
    }

    /**
     * Extracts the ZIP's entries (under their base names only: an entry's
     * path never chooses where a file goes) and checks there is one per
     * document.
     */
    private List<Path> unzip(Path zip, String id, int want) throws IOException {
        Path dir = Files.createDirectories(out.resolve(id));
        List<Path> entries = new ArrayList<>();
        try (ZipFile z = new ZipFile(zip.toFile())) {
            for (Enumeration<? extends ZipEntry> e = z.entries(); e.hasMoreElements(); ) {
                ZipEntry entry = e.nextElement();
                if (entry.isDirectory()) {
                    continue;
                }
                Path name = Path.of(entry.getName()).getFileName();
                if (name == null) {
                    throw new Failure("zip: entry \"" + entry.getName() + "\" has no file name");
                }
                Path dst = dir.resolve(name);
                if (entries.contains(dst)) { // two documents of one name
                    dst = dir.resolve(entries.size() + 1 + "-" + name);
                }
                try (InputStream in = z.getInputStream(entry)) {
                    Files.copy(in, dst, StandardCopyOption.REPLACE_EXISTING);
                }
                entries.add(dst);
                System.out.println("zip: entry " + entry.getName() + " (" + Files.size(dst) + " bytes) -> " + dst);
            }
        }
        System.out.println("zip: " + entries.size() + " entries");
        if (entries.size() != want) {
            throw new Failure("zip: " + entries.size() + " entries for a job of " + want + " documents");
        }
        return entries;
    }

    /**
     * Downloads document n alone and checks that its bytes are what its
     * Sealgate-Sealed-Sha256 header and ETag name and are one of the ZIP's
     * entries.
     */
    private void checkDocument(String id, int n, List<Path> entries) throws IOException, InterruptedException {
        HttpResponse<InputStream> resp = send(authorized(jobPath(id) + "/documents/" + n).GET().build(), 200);
        Path dst = out.resolve(id + "-document-" + n + ".pdf");
        save(resp, dst);
        String digest = sha256(dst);
        String named = header(resp, "Sealgate-Sealed-Sha256");
        String etag = header(resp, "ETag");
        if (!digest.equalsIgnoreCase(named) || !etag.equalsIgnoreCase("\"" + digest + "\"")) {
            throw new Failure("document " + n + ": SHA-256 " + digest + " but Sealgate-Sealed-Sha256 " + named + " and ETag " + etag);
        }
        boolean inZip = false;
        for (Path e : entries) {
            inZip |= sha256(e).equals(digest);
        }
        if (!inZip) {
            throw new Failure("document " + n + ": SHA-256 " + digest + " is no entry of the ZIP");
        }
        System.out.println("document: " + n + " sha256 " + digest + " (event " + header(resp, "Sealgate-Event")
                + ", evidence index " + header(resp, "Sealgate-Evidence-Index") + ") matches its ZIP entry");
    }

    // ---- 8. delete --------------------------------------------------------

    private void deleteJob(String id) throws IOException, InterruptedException {
        HttpResponse<InputStream> resp = send(authorized(jobPath(id)).DELETE().build(), 0);
        resp.body().close();
        System.out.println("job: " + id + " deleted (HTTP " + resp.statusCode() + ")");
    }

    // ---- HTTP -------------------------------------------------------------

    private HttpRequest.Builder request(String path) {
        return HttpRequest.newBuilder(base.resolve(path)).timeout(timeout);
    }

    private HttpRequest.Builder authorized(String path) {
        return request(path).header("Authorization", "Bearer " + token);
    }

    private static String jobPath(String id) {
        return "api/v1/jobs/" + URLEncoder.encode(id, StandardCharsets.UTF_8);
    }

    /**
     * Sends req and returns its answer when the status is want (any 2xx
     * for 0). A 429 or 503 with Retry-After is sent again after that time;
     * a 401 to a bearer token gets a new token once (it may have expired).
     * Any other status throws an Failure naming the problem's code.
     */
    private HttpResponse<InputStream> send(HttpRequest req, int want) throws IOException, InterruptedException {
        boolean renewed = false;
        for (int attempt = 0; ; attempt++) {
            HttpResponse<InputStream> resp = http.send(req, HttpResponse.BodyHandlers.ofInputStream());
            int status = resp.statusCode();
            if (want == 0 ? status / 100 == 2 : status == want) {
                return resp;
            }
            Failure err = problem(req, resp);
            Optional<Duration> after = retryAfter(resp);
            if ((status == 429 || status == 503) && after.isPresent() && attempt < MAX_RETRIES) {
                if (after.get().compareTo(MAX_RETRY_AFTER) > 0) {
                    throw new Failure(err.getMessage() + " (Retry-After " + after.get().toSeconds() + " s is too long to wait)");
                }
                System.out.println("retry: " + err.getMessage() + "; again in " + after.get().toSeconds() + " s");
                Thread.sleep(after.get().toMillis());
                continue;
            }
            if (status == 401 && !renewed && req.headers().firstValue("Authorization").orElse("").startsWith("Bearer ")) {
                renewed = true;
                fetchToken();
                req = HttpRequest.newBuilder(req, (k, v) -> !k.equalsIgnoreCase("Authorization"))
                        .header("Authorization", "Bearer " + token).build();
                continue;
            }
            throw err;
        }
    }

    /** Reads an error answer: problem+json, an OAuth error, or any text. */
    private static Failure problem(HttpRequest req, HttpResponse<InputStream> resp) throws IOException {
        String body;
        try (InputStream in = resp.body()) {
            body = new String(in.readNBytes(MAX_ERROR_BODY), StandardCharsets.UTF_8);
        }
        String where = req.method() + " " + req.uri().getPath() + ": HTTP " + resp.statusCode();
        String type = resp.headers().firstValue("Content-Type").orElse("");
        if (type.startsWith("application/problem+json") || type.startsWith("application/json")) {
            try {
                Map<String, Object> p = obj(new Json(body).parse());
                if (p.get("code") != null) {
                    return new Failure(where + " " + p.get("code") + ": " + p.getOrDefault("detail", p.get("title")));
                }
                if (p.get("error") != null) { // RFC 6749 §5.2, from the token endpoint
                    return new Failure(where + " " + p.get("error") + ": " + p.get("error_description"));
                }
            } catch (RuntimeException e) {
                // not JSON after all: report the text
            }
        }
        return new Failure(where + " " + body.strip());
    }

    /** Retry-After in seconds (RFC 9110 §10.2.3; the HTTP-date form is not used by sealgate). */
    private static Optional<Duration> retryAfter(HttpResponse<?> resp) {
        return resp.headers().firstValue("Retry-After").flatMap(s -> {
            try {
                return Optional.of(Duration.ofSeconds(Math.max(0, Long.parseLong(s.strip()))));
            } catch (NumberFormatException e) {
                return Optional.empty();
            }
        });
    }

    /** Writes the answer's body to dst through a temporary file: never a half-written result. */
    private static long save(HttpResponse<InputStream> resp, Path dst) throws IOException {
        Path tmp = Files.createTempFile(dst.toAbsolutePath().getParent(), ".part-", "");
        try (InputStream in = resp.body()) {
            Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
            Files.move(tmp, dst, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(tmp);
        }
        return Files.size(dst);
    }

    private static Object json(HttpResponse<InputStream> resp) throws IOException {
        try (InputStream in = resp.body()) {
            return new Json(new String(in.readAllBytes(), StandardCharsets.UTF_8)).parse();
        } catch (IllegalArgumentException e) {
            throw new Failure(resp.request().method() + " " + resp.uri().getPath() + ": the answer is not JSON: " + e.getMessage());
        }
    }

    private static String header(HttpResponse<?> resp, String name) {
        return resp.headers().firstValue(name).orElseThrow(
                () -> new Failure(resp.request().method() + " " + resp.uri().getPath() + ": no " + name + " header"));
    }

    private static String form(String s) {
        return URLEncoder.encode(s, StandardCharsets.UTF_8);
    }

    private static String stem(Path file) {
        String name = file.getFileName().toString();
        int dot = name.lastIndexOf('.');
        return dot > 0 ? name.substring(0, dot) : name;
    }

    private static String sha256(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[64 << 10];
            for (int n; (n = in.read(buf)) > 0; ) {
                md.update(buf, 0, n);
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e); // every JDK has SHA-256
        }
    }

    // ---- JSON values ------------------------------------------------------

    @SuppressWarnings("unchecked")
    private static Map<String, Object> obj(Object v) {
        if (v instanceof Map) {
            return (Map<String, Object>) v;
        }
        throw new Failure("expected a JSON object, got " + v);
    }

    private static List<?> list(Map<String, Object> m, String key) {
        if (m.get(key) instanceof List<?> l) {
            return l;
        }
        throw new Failure("expected an array \"" + key + "\" in " + m.keySet());
    }

    private static String str(Map<String, Object> m, String key) {
        if (m.get(key) instanceof String s) {
            return s;
        }
        throw new Failure("expected a string \"" + key + "\" in " + m.keySet());
    }

    private static String num(Map<String, Object> m, String key) {
        if (m.get(key) instanceof BigDecimal n) {
            return n.toPlainString();
        }
        throw new Failure("expected a number \"" + key + "\" in " + m.keySet());
    }

    /** A failure the client reports and exits on. */
    static final class Failure extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Failure(String message) {
            super(message);
        }
    }

    /**
     * A multipart/form-data body (RFC 7578) whose files are streamed from
     * disk when it is sent, never held in memory; it can be sent again.
     */
    static final class Multipart {
        private final String boundary = "sealgate-" + UUID.randomUUID();
        private final List<HttpRequest.BodyPublisher> parts = new ArrayList<>();

        Multipart field(String name, String value) {
            parts.add(text(head(name, null, "text/plain; charset=utf-8") + value + "\r\n"));
            return this;
        }

        Multipart file(String name, Path file, String type) throws IOException {
            parts.add(text(head(name, file.getFileName().toString(), type)));
            parts.add(HttpRequest.BodyPublishers.ofFile(file));
            parts.add(text("\r\n"));
            return this;
        }

        String contentType() {
            return "multipart/form-data; boundary=" + boundary;
        }

        HttpRequest.BodyPublisher publisher() {
            List<HttpRequest.BodyPublisher> all = new ArrayList<>(parts);
            all.add(text("--" + boundary + "--\r\n"));
            return HttpRequest.BodyPublishers.concat(all.toArray(HttpRequest.BodyPublisher[]::new));
        }

        private String head(String name, String filename, String type) {
            String disposition = "form-data; name=\"" + quote(name) + "\"";
            if (filename != null) {
                disposition += "; filename=\"" + quote(filename) + "\"";
            }
            return "--" + boundary + "\r\nContent-Disposition: " + disposition + "\r\nContent-Type: " + type + "\r\n\r\n";
        }

        private static String quote(String s) {
            return s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\r", "%0D").replace("\n", "%0A");
        }

        private static HttpRequest.BodyPublisher text(String s) {
            return HttpRequest.BodyPublishers.ofString(s, StandardCharsets.UTF_8);
        }
    }

    /**
     * A small JSON reader (RFC 8259): objects become LinkedHashMaps, arrays
     * Lists, numbers BigDecimals, and true, false and null Boolean and null.
     */
    static final class Json {
        private final String s;
        private int i;

        Json(String s) {
            this.s = s;
        }

        Object parse() {
            Object v = value();
            space();
            if (i != s.length()) {
                throw error("text after the value");
            }
            return v;
        }

        private Object value() {
            space();
            if (i == s.length()) {
                throw error("end of text");
            }
            char c = s.charAt(i);
            switch (c) {
                case '{':
                    return object();
                case '[':
                    return array();
                case '"':
                    return string();
                default:
                    if (s.startsWith("true", i)) {
                        i += 4;
                        return Boolean.TRUE;
                    }
                    if (s.startsWith("false", i)) {
                        i += 5;
                        return Boolean.FALSE;
                    }
                    if (s.startsWith("null", i)) {
                        i += 4;
                        return null;
                    }
                    return number();
            }
        }

        private Map<String, Object> object() {
            Map<String, Object> m = new LinkedHashMap<>();
            i++;
            space();
            if (peek('}')) {
                return m;
            }
            do {
                space();
                if (i == s.length() || s.charAt(i) != '"') {
                    throw error("a member name");
                }
                String k = string();
                space();
                expect(':');
                m.put(k, value());
                space();
            } while (peek(','));
            expect('}');
            return m;
        }

        private List<Object> array() {
            List<Object> l = new ArrayList<>();
            i++;
            space();
            if (peek(']')) {
                return l;
            }
            do {
                l.add(value());
                space();
            } while (peek(','));
            expect(']');
            return l;
        }

        private String string() {
            StringBuilder b = new StringBuilder();
            i++;
            while (i < s.length()) {
                char c = s.charAt(i++);
                if (c == '"') {
                    return b.toString();
                }
                if (c != '\\') {
                    b.append(c);
                    continue;
                }
                if (i == s.length()) {
                    break;
                }
                char e = s.charAt(i++);
                switch (e) {
                    case '"', '\\', '/' -> b.append(e);
                    case 'b' -> b.append('\b');
                    case 'f' -> b.append('\f');
                    case 'n' -> b.append('\n');
                    case 'r' -> b.append('\r');
                    case 't' -> b.append('\t');
                    case 'u' -> {
                        if (i + 4 > s.length()) {
                            throw error("a \\u escape");
                        }
                        b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                        i += 4;
                    }
                    default -> throw error("an escape");
                }
            }
            throw error("the end of a string");
        }

        private BigDecimal number() {
            int start = i;
            while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) {
                i++;
            }
            try {
                return new BigDecimal(s.substring(start, i));
            } catch (NumberFormatException e) {
                i = start;
                throw error("a value");
            }
        }

        private void space() {
            while (i < s.length() && " \t\r\n".indexOf(s.charAt(i)) >= 0) {
                i++;
            }
        }

        private boolean peek(char c) {
            if (i < s.length() && s.charAt(i) == c) {
                i++;
                return true;
            }
            return false;
        }

        private void expect(char c) {
            if (!peek(c)) {
                throw error("'" + c + "'");
            }
        }

        private IllegalArgumentException error(String want) {
            return new IllegalArgumentException("JSON: expected " + want + " at offset " + i);
        }
    }
}
