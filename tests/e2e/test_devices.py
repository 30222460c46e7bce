"""End-to-end 6: devices. The example DeviceModel and Device (an LED light with a
power-status twin) created with kubectl reach a mapper on the edge's MQTT broker; a reported
value published with mosquitto_pub shows in kubectl; a desired value patched with kubectl
reaches the mapper as a delta."""

import json
import os

from tests.e2e.harness import EXAMPLES, WalkthroughCase, example_documents

DEVICE = "led-light-1"
TWIN = "$hw/events/device/{}/twin/".format(DEVICE)


class DevicesTests(WalkthroughCase):

    async def test_membership_reported_desired(self):
        """kubectl apply device-model.yaml + device.yaml -> membership/updated on MQTT with
        the twin; mosquitto_pub twin/update -> result, and status.twins[].reported in
        kubectl; kubectl patch desired -> twin/update/delta."""
        await self.start_both()
        membership = "$hw/events/node/{}/membership/updated".format(self.node)
        watch = await self.mqtt_watch(membership, TWIN + "update/result",
                                      TWIN + "update/delta")
        out = await self.kubectl("apply", "-f", os.path.join(EXAMPLES, "device-model.yaml"))
        self.assertIn("devicemodel.devices.kubeedge.io/led-light-model created", out)
        device, = example_documents("device.yaml")
        out = await self.apply(self.for_this_node(device))
        self.assertIn("device.devices.kubeedge.io/{} created".format(DEVICE), out)

        async def announced():
            return watch.on(membership)
        update, = await self.wait_until(announced, 30, "membership/updated on MQTT")
        added, = update["added_devices"]
        self.assertEqual(added["id"], DEVICE)
        self.assertEqual(added["twin"]["power-status"]["expected"]["value"], "ON")

        # The light is on, as the cloud wants: the mapper reports ON.
        await self.mqtt_publish(TWIN + "update", {
            "event_id": "report-1", "timestamp": 1,
            "twin": {"power-status": {"actual": {"value": "ON"},
                                      "metadata": {"type": "string"}}}})

        async def result():
            return [r for r in watch.on(TWIN + "update/result")
                    if r.get("event_id") == "report-1"]
        answer, = await self.wait_until(result, 30, "twin/update/result")
        self.assertEqual(answer["twin"]["power-status"]["actual"]["value"], "ON")

        async def reported():
            obj = await self.kubectl_json("get", "device", DEVICE)
            twin, = obj["status"]["twins"]
            return twin if twin.get("reported", {}).get("value") == "ON" else None
        twin = await self.wait_until(reported, 30, "status.twins[].reported = ON in kubectl")
        self.assertEqual(twin["desired"]["value"], "ON")
        self.assertEqual(twin["reported"]["metadata"]["type"], "string")
        self.assertIn(DEVICE, await self.kubectl("get", "devices"))

        # Switch it off from the cloud: the mapper is told the difference.
        seen = len(watch.on(TWIN + "update/delta"))
        await self.kubectl("patch", "device", DEVICE, "--type=merge", "-p", json.dumps({
            "status": {"twins": [{"propertyName": "power-status",
                                  "desired": {"value": "OFF", "metadata": {"type": "string"}},
                                  "reported": twin["reported"]}]}}))

        async def delta():
            return watch.on(TWIN + "update/delta")[seen:]
        first = (await self.wait_until(delta, 30, "twin/update/delta after kubectl patch"))[0]
        self.assertEqual(first["delta"], {"power-status": "OFF"})
        self.assertEqual(first["twin"]["power-status"]["expected"]["value"], "OFF")
