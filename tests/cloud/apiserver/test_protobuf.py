"""Unit tests for decoding kubectl's protobuf request bodies (samples captured from
kubectl 1.32.4's typed ``create`` commands)."""

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.apiserver.protobuf import ProtobufError, decode_object

#: kubectl create configmap fx --from-literal=a=b
CONFIGMAP = bytes.fromhex(
    "6b3873000a0f0a0276311209436f6e6669674d6170121c0a120a02667812001a0022002a00320038004200"
    "12060a01611201621a002200")
#: kubectl create deployment fxd --image=nginx:1.25 --port=80 --replicas=0
DEPLOYMENT = bytes.fromhex(
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412bd010a1f0a0366786412001a002200"
    "2a003200380042005a0a0a036170701203667864128b010800120c0a0a0a0361707012036678641a710a1c"
    "0a0012001a0022002a003200380042005a0a0a036170701203667864125112330a056e67696e78120a6e67"
    "696e783a312e32352a00320a0a001000185022002a0042006a007200800100880100900100a201001a0032"
    "0042004a0052005800600068008201008a01009a0100c2010022020a00280038001a0c0800100018002000"
    "280038001a002200")
#: kubectl create service nodeport fxs --tcp=80:http
SERVICE = bytes.fromhex(
    "6b3873000a0d0a027631120753657276696365126b0a1f0a0366787312001a0022002a0032003800420"
    "05a0a0a03617070120366787312440a1e0a0738302d6874747012035443501850220a080110001a046874"
    "74702800120a0a0361707012036678731a0022084e6f6465506f72743a00420052005a0060006800"
    "1a020a001a002200")
#: kubectl create namespace fxn
NAMESPACE = bytes.fromhex(
    "6b3873000a0f0a02763112094e616d657370616365121b0a130a0366786e12001a0022002a00320038004"
    "20012001a020a001a002200")
#: kubectl create secret generic fxsec --from-literal=k=v
SECRET = bytes.fromhex(
    "6b3873000a0c0a027631120653656372657412210a150a05667873656312001a0022002a003200380042"
    "0012060a016b1201761a001a002200")


def envelope(api_version, kind, raw):
    """A Kubernetes protobuf body (short fields only)."""
    type_meta = (b"\x0a" + bytes([len(api_version)]) + api_version + b"\x12" +
                 bytes([len(kind)]) + kind)
    return (b"k8s\x00\x0a" + bytes([len(type_meta)]) + type_meta + b"\x12" +
            bytes([len(raw)]) + raw)


class DecodeTests(SynchronousTestCase):
    """kubectl's typed create bodies decode to what the JSON body would be."""

    def test_configmap(self):
        """Name and data; the zero-valued metadata fields are left out."""
        self.assertEqual(decode_object(CONFIGMAP), {
            "kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "fx"},
            "data": {"a": "b"}})

    def test_secret_bytes_are_base64(self):
        """[]byte map values become base64 strings, as in JSON."""
        self.assertEqual(decode_object(SECRET)["data"], {"k": "dg=="})

    def test_namespace(self):
        """An empty spec and the status are dropped."""
        self.assertEqual(decode_object(NAMESPACE), {
            "kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "fxn"}})

    def test_deployment(self):
        """Pointer fields keep their zero (replicas 0); the pod template decodes."""
        obj = decode_object(DEPLOYMENT)
        self.assertEqual(obj["spec"]["replicas"], 0)
        self.assertEqual(obj["spec"]["selector"], {"matchLabels": {"app": "fxd"}})
        template = obj["spec"]["template"]
        self.assertEqual(template["metadata"], {"labels": {"app": "fxd"}})
        self.assertEqual(template["spec"]["containers"], [
            {"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}])
        self.assertNotIn("status", obj)

    def test_service_named_target_port(self):
        """IntOrString target ports keep their string form."""
        spec = decode_object(SERVICE)["spec"]
        self.assertEqual(spec["type"], "NodePort")
        self.assertEqual(spec["ports"], [{"name": "80-http", "protocol": "TCP", "port": 80,
                                          "targetPort": "http"}])

    def test_refusals(self):
        """Garbage, unknown kinds and unknown non-empty fields are errors, not guesses."""
        self.assertRaises(ProtobufError, decode_object, b"{}")
        self.assertRaises(ProtobufError, decode_object, CONFIGMAP[:30])
        other_kind = CONFIGMAP.replace(b"ConfigMap", b"ConfigMaq")
        self.assertRaises(ProtobufError, decode_object, other_kind)
        metadata = b"\x0a\x04\x0a\x02cm"
        # Field 9 is unknown for a ConfigMap: skipped when zero, refused with a value.
        self.assertEqual(decode_object(envelope(b"v1", b"ConfigMap", metadata + b"\x48\x00"))
                         ["metadata"], {"name": "cm"})
        e = self.assertRaises(ProtobufError, decode_object,
                              envelope(b"v1", b"ConfigMap", metadata + b"\x48\x01"))
        self.assertIn("field 9", str(e))
