"""Files in and out: frame sources (video, image folder, image), bags (decoded frames of a topic,
serialized messages for replay, writing), and atomic writes.

- :mod:`.frame_sources`: ``(index, BGR frame)`` from a video, an image folder or one image;
- :mod:`.bag_frame_reader`: the same from one image topic of a bag (calibration, offline tools);
- :mod:`.bag_message_reader`: a bag's image messages as serialized CDR bytes (replay);
- :mod:`.bag_writer`: the package's type store and a bag writer that renames into place;
- :mod:`.frames_to_bag`: frames -> a bag of one image topic (``make-bag``);
- :mod:`.atomic_write`: files that appear complete or not at all.
"""
