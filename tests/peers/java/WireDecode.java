// Decodes protobuf messages with protobuf-java, the way a Java peer of the mesh would, and prints each in the
// text format (tests/integration/test_router_java_peer.py compares it with Python's decoding).
//
//   java -cp protobuf.jar:. WireDecode DESCRIPTORS.pb DIR
//
// DESCRIPTORS.pb is a FileDescriptorSet holding every file the messages need, dependencies first. DIR holds
// one file per message, named <case>@<full.message.Name>.bin. Messages are parsed as DynamicMessage from those
// descriptors: the same wire-format parser (CodedInputStream, and its merging of repeated message fields) that
// generated Java classes use.
import com.google.protobuf.DescriptorProtos.FileDescriptorProto;
import com.google.protobuf.DescriptorProtos.FileDescriptorSet;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FileDescriptor;
import com.google.protobuf.DynamicMessage;
import com.google.protobuf.TextFormat;
import java.io.File;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

public final class WireDecode {
  public static void main(String[] args) throws Exception {
    FileDescriptorSet set = FileDescriptorSet.parseFrom(Files.readAllBytes(new File(args[0]).toPath()));
    Map<String, FileDescriptor> built = new HashMap<>();
    Map<String, Descriptor> messages = new HashMap<>();
    for (FileDescriptorProto proto : set.getFileList()) {
      FileDescriptor[] deps = proto.getDependencyList().stream().map(built::get).toArray(FileDescriptor[]::new);
      FileDescriptor file = FileDescriptor.buildFrom(proto, deps);
      built.put(proto.getName(), file);
      for (Descriptor message : file.getMessageTypes()) {
        messages.put(message.getFullName(), message);
      }
    }
    File[] cases = new File(args[1]).listFiles((dir, name) -> name.endsWith(".bin"));
    Arrays.sort(cases);
    for (File file : cases) {
      String name = file.getName();
      String type = name.substring(name.indexOf('@') + 1, name.length() - ".bin".length());
      Descriptor descriptor = messages.get(type);
      if (descriptor == null) {
        throw new IllegalArgumentException("no message type " + type + " in " + args[0]);
      }
      DynamicMessage message = DynamicMessage.parseFrom(descriptor, Files.readAllBytes(file.toPath()));
      System.out.println("=== " + name.substring(0, name.indexOf('@')));
      System.out.print(TextFormat.printer().printToString(message));
    }
  }
}
