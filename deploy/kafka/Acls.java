// `broker.sh acl`: create allow ACLs on the secure dev broker as its super user.
// Run by the JDK's single-file source launcher (no build step):
//   java -cp 'LIB/*' Acls.java admin.properties USER:OPERATION:RESOURCE ...
// RESOURCE is topic:NAME, group:NAME or cluster; a NAME ending in '*' is a prefix.
// Example: geosentry:READ:topic:waveforms geosentry:READ:group:detect geosentry:WRITE:topic:alerts

import java.io.FileReader;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class Acls {
    static AclBinding parse(String spec) {
        String[] p = spec.split(":", 4);
        if (p.length < 3) {
            throw new IllegalArgumentException("expected USER:OPERATION:RESOURCE, got " + spec);
        }
        AclOperation op = AclOperation.fromString(p[1]);
        if (op == AclOperation.UNKNOWN) {
            throw new IllegalArgumentException("unknown operation " + p[1] + " in " + spec);
        }
        ResourceType type;
        String name;
        switch (p[2].toLowerCase()) {
            case "topic": type = ResourceType.TOPIC; break;
            case "group": type = ResourceType.GROUP; break;
            case "cluster": type = ResourceType.CLUSTER; break;
            default: throw new IllegalArgumentException("unknown resource " + p[2] + " in " + spec);
        }
        if (type == ResourceType.CLUSTER) {
            name = "kafka-cluster";
        } else if (p.length == 4 && !p[3].isEmpty()) {
            name = p[3];
        } else {
            throw new IllegalArgumentException("resource name missing in " + spec);
        }
        PatternType pattern = PatternType.LITERAL;
        if (name.length() > 1 && name.endsWith("*")) {
            name = name.substring(0, name.length() - 1);
            pattern = PatternType.PREFIXED;
        }
        return new AclBinding(new ResourcePattern(type, name, pattern),
            new AccessControlEntry("User:" + p[0], "*", op, AclPermissionType.ALLOW));
    }

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        try (FileReader in = new FileReader(args[0])) {
            props.load(in);
        }
        List<AclBinding> acls = new ArrayList<>();
        for (int i = 1; i < args.length; i++) {
            acls.add(parse(args[i]));
        }
        try (Admin admin = Admin.create(props)) {
            admin.createAcls(acls).all().get();
        }
        for (AclBinding b : acls) {
            System.err.println("acl: allowed " + b.entry().principal() + " "
                + b.entry().operation() + " on " + b.pattern().resourceType() + " "
                + b.pattern().name() + (b.pattern().patternType() == PatternType.PREFIXED ? "*" : ""));
        }
    }
}
