"""The cloud side (KubeEdge's cloudcore): cloudhub, edgecontroller, synccontroller,
devicecontroller and the Kubernetes API they talk to."""
