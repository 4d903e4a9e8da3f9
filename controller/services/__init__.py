"""Use-case services: the controller's work split by what it is for (submission, clusters,
policies, the drill reports read for the dashboard, ...), each with its dependencies explicit.
The layer between the API (controller/api/) and the scheduler, the store and the executors;
see docs/architecture.md."""
