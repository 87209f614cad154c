from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition

from financial.marketdata.v2.prices_pb2 import PriceUpdate
from marketcore.instruments import InstrumentKey
from marketinfra.kafka import make_consumer, make_producer
from marketinfra.settings import KafkaSettings
from tests.integration.support import consume_or_fail, flush_or_fail, murmur2_partition
from tests.support import price_update


def _aapl_update() -> PriceUpdate:
    return price_update(
        exchange="NASDAQ",
        symbol="AAPL",
        bid_nanos=189_490_000,
        ask_nanos=189_510_000,
        last_nanos=189_500_000,
        volume_nanos=1_234_000_000,
        event_time_ns=1_710_000_000_123_456_789,
        received_time_ns=1_710_000_000_123_999_000,
        feed_handler_id="fh-test",
        venue_symbol="AAPL",
        feed_sequence=1,
    )


def test_price_update_comes_back_byte_identical_from_the_keyed_partition(
    kafka_settings: KafkaSettings, make_topic
) -> None:
    partitions = 8
    topic = make_topic(partitions)
    key = InstrumentKey("NASDAQ", "AAPL").kafka_key()
    value = _aapl_update().SerializeToString()
    delivered: list[Message] = []

    producer = make_producer(kafka_settings)
    producer.produce(
        topic, value=value, key=key, on_delivery=lambda err, msg: delivered.append(msg)
    )
    flush_or_fail(producer, kafka_settings.bootstrap_servers)

    expected_partition = murmur2_partition(key, partitions)
    assert key == b"NASDAQ|AAPL"
    assert len(delivered) == 1
    assert delivered[0].error() is None
    assert delivered[0].partition() == expected_partition  # Java-compatible murmur2 placement

    consumer = make_consumer(kafka_settings, group_id=f"{topic}.reader")
    try:
        consumer.assign([TopicPartition(topic, expected_partition, OFFSET_BEGINNING)])
        (message,) = consume_or_fail(consumer, 1, kafka_settings.bootstrap_servers)
    finally:
        consumer.close()
    assert message.key() == key
    assert message.value() == value
    assert PriceUpdate.FromString(message.value()) == _aapl_update()


def test_one_instruments_ticks_stay_in_order(kafka_settings: KafkaSettings, make_topic) -> None:
    topic = make_topic(4)
    key = InstrumentKey("COINBASE", "BTC-USD").kafka_key()
    producer = make_producer(kafka_settings)
    for sequence in range(1, 201):
        tick = price_update(
            exchange="COINBASE", symbol="BTC-USD", last_nanos=sequence, feed_sequence=sequence
        )
        producer.produce(topic, value=tick.SerializeToString(), key=key)
    flush_or_fail(producer, kafka_settings.bootstrap_servers)

    consumer = make_consumer(kafka_settings, group_id=f"{topic}.reader")
    consumer.assign([TopicPartition(topic, murmur2_partition(key, 4), OFFSET_BEGINNING)])
    try:
        messages = consume_or_fail(consumer, 200, kafka_settings.bootstrap_servers)
    finally:
        consumer.close()
    assert [PriceUpdate.FromString(m.value()).feed_sequence for m in messages] == list(
        range(1, 201)
    )
