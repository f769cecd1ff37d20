"""ModelDeployment: a Deployment, a Service and an optional HPA serving one model; the promotion gate,
canary rollouts, drift monitoring and retraining."""
