"""Several cameras, one model: gathering the newest frame of each camera into a batch
(:mod:`.gatherer`), running a batch through one inference call (:mod:`.batch_pipeline`), and the
batch sizes an engine is built for and called with (:mod:`.batch_plan`). ROS-free.
"""
