"""SparkPi as a PySpark script: estimates pi from random points in the square
[-1, 1] x [-1, 1], the share of them inside the unit circle being pi/4.

    spark-submit local:///opt/kubesu/pi.py [PARTITIONS]   (default 2)

Each partition draws 100000 points: even with one partition the estimate's
standard deviation is about 0.005, so pi lies 8 of them inside [3.1, 3.2) and
the line tests look for, "Pi is roughly 3.1", is printed all but surely.
"""
import random
import sys

from pyspark.sql import SparkSession

POINTS_PER_PARTITION = 100000


def hits(seed_and_count):
    seed, count = seed_and_count
    rng = random.Random(seed)
    inside = 0
    for _ in range(count):
        x, y = rng.uniform(-1, 1), rng.uniform(-1, 1)
        if x * x + y * y <= 1:
            inside += 1
    return inside


def main():
    partitions = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    if partitions < 1:
        sys.exit("pi.py: PARTITIONS must be at least 1")
    # No appName: the submission's --name stays the application's name, which
    # Spark puts on the executor pods as spark-app-name.
    spark = SparkSession.builder.getOrCreate()
    # One task per partition, each with its own random seed.
    work = [(random.getrandbits(64), POINTS_PER_PARTITION) for _ in range(partitions)]
    inside = spark.sparkContext.parallelize(work, partitions).map(hits).sum()
    print("Pi is roughly %f" % (4.0 * inside / (partitions * POINTS_PER_PARTITION)))
    spark.stop()


if __name__ == "__main__":
    main()
