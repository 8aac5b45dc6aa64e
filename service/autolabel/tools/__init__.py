"""Commands around the service: the demo, file replay, seeding, offline evaluation,
bundled data sets, schema files and the local broker used by the demo and the tests."""
