package woci.sdktest;

import com.oracle.bmc.ConfigFileReader;
import com.oracle.bmc.auth.SessionTokenAuthenticationDetailsProvider;
import com.oracle.bmc.model.BmcException;
import com.oracle.bmc.objectstorage.ObjectStorageClient;
import com.oracle.bmc.objectstorage.requests.PutObjectRequest;
import com.oracle.bmc.objectstorage.responses.PutObjectResponse;

import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;

/**
 * What a user's batch job does with the OCI Java SDK: a session-token profile from
 * {@code ~/.oci/config} (the profile {@code oci session authenticate} or woci writes), one Object
 * Storage client, and PutObject in a loop for a while.
 *
 * <p>Usage: {@code Puts PROFILE ENDPOINT NAMESPACE BUCKET SECONDS INTERVAL_MS}. Prints one line per
 * put ({@code put N ok} or {@code put N failed STATUS ...}) and exits 0 when every put succeeded,
 * 1 at the first failure (as an unhandled exception would end a batch job).
 */
public final class Puts {
    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: Puts PROFILE ENDPOINT NAMESPACE BUCKET SECONDS INTERVAL_MS");
            System.exit(2);
        }
        String profile = args[0];
        String endpoint = args[1];
        String namespace = args[2];
        String bucket = args[3];
        long until = System.currentTimeMillis() + Long.parseLong(args[4]) * 1000;
        long interval = Long.parseLong(args[5]);

        ConfigFileReader.ConfigFile config = ConfigFileReader.parseDefault(profile);
        SessionTokenAuthenticationDetailsProvider auth =
                new SessionTokenAuthenticationDetailsProvider(config);
        ObjectStorageClient client = ObjectStorageClient.builder().endpoint(endpoint).build(auth);

        int n = 0;
        int code = 0;
        try {
            while (System.currentTimeMillis() < until) {
                n++;
                byte[] body = ("object " + n + "\n").getBytes(StandardCharsets.UTF_8);
                PutObjectRequest req =
                        PutObjectRequest.builder()
                                .namespaceName(namespace)
                                .bucketName(bucket)
                                .objectName("java-" + n)
                                .contentLength((long) body.length)
                                .putObjectBody(new ByteArrayInputStream(body))
                                .build();
                try {
                    PutObjectResponse resp = client.putObject(req);
                    System.out.println("put " + n + " ok " + resp.getETag());
                } catch (BmcException e) {
                    System.out.println(
                            "put " + n + " failed " + e.getStatusCode() + " " + e.getServiceCode());
                    code = 1;
                    break;
                }
                Thread.sleep(interval);
            }
        } finally {
            client.close();
            auth.close();
        }
        System.out.println("puts " + (code == 0 ? n : n - 1) + " ok");
        System.exit(code);
    }
}
